//! `is-free-port` through wasmtime against sockets the test holds.

use crate::common::{Holder, free_port, hold, ipv6_loopback, session, skipped};
use port_host::ErrorCode;
use socket2::{Domain, Socket, Type};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

fn reads_busy_while_held(holder: Holder) {
    let port = free_port();
    let mut session = session();
    assert_eq!(
        session.is_free_port(port).unwrap(),
        Ok(true),
        "port {port} before it is held"
    );
    let socket = hold(holder, port);
    assert_eq!(
        session.is_free_port(port).unwrap(),
        Ok(false),
        "port {port} while held"
    );
    drop(socket);
    assert_eq!(
        session.is_free_port(port).unwrap(),
        Ok(true),
        "port {port} once released"
    );
}

#[test]
fn unused_port_is_free() {
    assert_eq!(session().is_free_port(free_port()).unwrap(), Ok(true));
}

#[test]
fn listener_on_ipv4_loopback_is_busy() {
    reads_busy_while_held(Holder::Ipv4Loopback);
}

#[test]
fn listener_on_ipv4_wildcard_is_busy() {
    reads_busy_while_held(Holder::Ipv4Wildcard);
}

#[test]
fn listener_on_ipv6_dual_stack_wildcard_is_busy() {
    if ipv6_loopback() {
        reads_busy_while_held(Holder::Ipv6Wildcard);
    } else {
        skipped("listener_on_ipv6_dual_stack_wildcard_is_busy: no IPv6 here");
    }
}

#[test]
fn listener_on_ipv6_loopback_only_is_busy() {
    if ipv6_loopback() {
        reads_busy_while_held(Holder::Ipv6LoopbackOnly);
    } else {
        skipped("listener_on_ipv6_loopback_only_is_busy: no IPv6 loopback here");
    }
}

#[test]
fn bound_but_not_listening_socket_is_busy() {
    reads_busy_while_held(Holder::BoundNotListening);
}

/// hbutils connects to the port; against a server whose accept queue is full
/// that blocks, and against any server it leaves a junk connection behind.
#[test]
fn full_accept_queue_reads_busy_without_being_contacted() {
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.set_reuse_address(true).unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(1).unwrap();
    // Never accepted: more than the backlog fills the queue. Past that, a
    // connect hangs in SYN retries, so the test gives each a short wait.
    let clients: Vec<TcpStream> = (0..4)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    assert!(!clients.is_empty());

    let mut session = session();
    for _ in 0..3 {
        assert_eq!(session.is_free_port(port).unwrap(), Ok(false));
    }

    // Every connection in the queue is one of ours: the checks made none.
    listener.set_nonblocking(true).unwrap();
    let mut queued = 0;
    loop {
        match listener.accept() {
            Ok((_, peer)) => {
                let peer = peer.as_socket().unwrap();
                assert!(
                    clients.iter().any(|c| c.local_addr().unwrap() == peer),
                    "a connection from {peer} came from the check"
                );
                queued += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("accept: {e}"),
        }
    }
    assert!(queued >= 1 && queued <= clients.len());
}

#[test]
fn port_zero_is_invalid_argument() {
    let answer = session().is_free_port(0).unwrap();
    assert!(
        matches!(answer, Err(ErrorCode::InvalidArgument(_))),
        "{answer:?}"
    );
}

#[test]
fn closing_the_check_leaves_the_port_usable_at_once() {
    let port = free_port();
    let mut session = session();
    for _ in 0..50 {
        assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
    }
    // No TIME_WAIT or lingering bind: a server that does not set
    // SO_REUSEADDR (which would forgive both) can listen on the port right away.
    let strict_listener = |addr: SocketAddr| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.set_reuse_address(false).unwrap();
        if addr.is_ipv6() {
            socket.set_only_v6(true).unwrap();
        }
        socket.bind(&addr.into()).unwrap();
        socket.listen(1).unwrap();
        socket
    };
    let _v4 = strict_listener((Ipv4Addr::LOCALHOST, port).into());
    if ipv6_loopback() {
        let _v6 = strict_listener((Ipv6Addr::LOCALHOST, port).into());
    } else {
        skipped(
            "the [::1] half of closing_the_check_leaves_the_port_usable_at_once: no IPv6 loopback",
        );
    }
}
