//! `reserve-port`, the `reservation` resource and `probe-port` through
//! wasmtime: what a reservation holds, what ends it, and what misuse returns.

use crate::common::{
    Holder, block, free_block, hold, host, ipv6_loopback, listen, natively_free, session,
};
use port_host::{
    Candidates, ErrorCode, FamilyStatus, NetworkPolicy, PortStatus, Reservation, ReservationError,
    Session, Stderr,
};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

fn reserve(session: &mut Session, ports: &Candidates) -> (Reservation, u16) {
    let reservation = session.reserve_port(Some(ports), true).unwrap().unwrap();
    let port = session.reservation_port(&reservation).unwrap().unwrap();
    (reservation, port)
}

/// Whether a fresh socket may bind `addr`, with or without SO_REUSEADDR.
fn bindable(addr: SocketAddr, reuse_address: bool) -> bool {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    if addr.is_ipv6() {
        socket.set_only_v6(false).unwrap();
    }
    socket.set_reuse_address(reuse_address).unwrap();
    socket.bind(&addr.into()).is_ok()
}

#[test]
fn a_reservation_makes_every_later_bind_of_its_port_fail() {
    let start = free_block(4);
    let mut session = session();
    let (reservation, port) = reserve(&mut session, &block(start, 4));
    assert_eq!(port, start);

    for reuse_address in [false, true] {
        assert!(!bindable((Ipv4Addr::LOCALHOST, port).into(), reuse_address));
        assert!(!bindable(
            (Ipv4Addr::UNSPECIFIED, port).into(),
            reuse_address
        ));
        if ipv6_loopback() {
            // [::] without IPV6_V6ONLY covers 127.0.0.1 too.
            assert!(!bindable(
                (Ipv6Addr::UNSPECIFIED, port).into(),
                reuse_address
            ));
        }
    }
    let mut other = session_of_another_caller();
    assert_eq!(other.is_free_port(port).unwrap(), Ok(false));
    assert_eq!(
        other.probe_port(port).unwrap().map(|status| status.ipv4),
        Ok(FamilyStatus::InUse)
    );

    assert_eq!(session.release(&reservation).unwrap(), Ok(()));
    assert!(natively_free(port));
    assert_eq!(other.is_free_port(port).unwrap(), Ok(true));
}

fn session_of_another_caller() -> Session {
    host()
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap()
}

#[test]
fn reservations_follow_the_search_rules_and_skip_what_they_hold() {
    let start = free_block(5);
    let _held = listen(start + 1);
    let mut session = session();
    let ports = block(start, 5);
    let taken: Vec<u16> = (0..4).map(|_| reserve(&mut session, &ports).1).collect();
    assert_eq!(taken, [start, start + 2, start + 3, start + 4]);

    assert_eq!(
        session.reserve_port(Some(&ports), true).unwrap().err(),
        Some(ErrorCode::NoFreePort(format!(
            "No free port can be allocated within range({start}, {})",
            start + 5
        )))
    );
    // The same port listed twice is still reserved once.
    let twice = Candidates::Explicit(vec![start, start]);
    assert!(session.reserve_port(Some(&twice), true).unwrap().is_err());

    // Without strict, the OS picks one; it is held like any other.
    let fallback = session.reserve_port(Some(&ports), false).unwrap().unwrap();
    let port = session.reservation_port(&fallback).unwrap().unwrap();
    assert!(!(start..start + 5).contains(&port));
    assert!(!natively_free(port));
    assert_eq!(session.captured_stderr().as_deref(), Some(""));
}

#[test]
fn without_usable_candidates_strict_is_switched_off_with_the_warning() {
    let mut session = session();
    let low = Candidates::Explicit(vec![80, 443]);
    let (_reservation, port) = reserve(&mut session, &low);
    assert!(port >= 1024);
    assert!(!natively_free(port));
    assert_eq!(
        session.captured_stderr().as_deref(),
        Some("warning: no usable ports (>= 1024) were given, so strict mode is disabled\n")
    );
}

#[test]
fn the_taken_socket_is_listening_and_holds_the_port_until_closed() {
    let start = free_block(1);
    let mut session = session();
    let (reservation, port) = reserve(&mut session, &block(start, 1));
    let socket = session.take_socket(&reservation).unwrap().unwrap();

    assert!(!natively_free(port));
    // A listener completes the handshake from its backlog before any accept.
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("the socket listens");

    session.close_socket(socket).unwrap();
    assert!(natively_free(port));
}

#[test]
fn misuse_of_an_ended_reservation_is_an_error_and_the_instance_lives_on() {
    let start = free_block(2);
    let mut session = session();
    let ports = block(start, 2);

    let (taken, _) = reserve(&mut session, &ports);
    let socket = session.take_socket(&taken).unwrap().unwrap();
    let ended = Err(ReservationError::SocketTaken);
    assert_eq!(session.reservation_port(&taken).unwrap(), ended);
    assert_eq!(session.take_socket(&taken).unwrap().err(), ended.err());
    assert_eq!(session.release(&taken).unwrap(), ended.map(|_: u16| ()));

    let (released, _) = reserve(&mut session, &ports);
    assert_eq!(session.release(&released).unwrap(), Ok(()));
    let ended = Err(ReservationError::Released);
    assert_eq!(session.release(&released).unwrap(), ended);
    assert_eq!(
        session.reservation_port(&released).unwrap(),
        ended.map(|()| 0)
    );
    assert_eq!(session.take_socket(&released).unwrap().err(), ended.err());

    // Both handles can still be dropped, and the instance still answers.
    session.drop_reservation(taken).unwrap();
    session.drop_reservation(released).unwrap();
    session.close_socket(socket).unwrap();
    assert_eq!(session.is_free_port(start).unwrap(), Ok(true));
    assert_eq!(reserve(&mut session, &ports).1, start);
}

#[test]
fn dropping_a_reservation_or_its_whole_store_frees_the_port() {
    let start = free_block(4);
    let ports = block(start, 4);
    let mut session = session();
    let (dropped, port) = reserve(&mut session, &ports);
    session.drop_reservation(dropped).unwrap();
    assert!(natively_free(port));

    let held: Vec<u16> = (0..4).map(|_| reserve(&mut session, &ports).1).collect();
    assert!(held.iter().all(|&port| !natively_free(port)));
    drop(session);
    assert!(held.iter().all(|&port| natively_free(port)));
}

#[test]
fn probe_port_reports_each_family_on_its_own() {
    let mut session = session();
    let v6_free = if ipv6_loopback() {
        FamilyStatus::Free
    } else {
        FamilyStatus::Unsupported
    };
    let status = |ipv4, ipv6| Ok(PortStatus { ipv4, ipv6 });

    let port = free_block(1);
    assert_eq!(
        session.probe_port(port).unwrap(),
        status(FamilyStatus::Free, v6_free)
    );
    let _v4 = hold(Holder::Ipv4Loopback, port);
    assert_eq!(
        session.probe_port(port).unwrap(),
        status(FamilyStatus::InUse, v6_free)
    );

    if ipv6_loopback() {
        let port = free_block(1);
        let _v6 = hold(Holder::Ipv6LoopbackOnly, port);
        assert_eq!(
            session.probe_port(port).unwrap(),
            status(FamilyStatus::Free, FamilyStatus::InUse)
        );
    }

    assert!(matches!(
        session.probe_port(0).unwrap(),
        Err(ErrorCode::InvalidArgument(_))
    ));
    let mut denied = host()
        .session(NetworkPolicy::denied(), Stderr::Capture)
        .unwrap();
    assert_eq!(
        denied.probe_port(port).unwrap(),
        status(FamilyStatus::Denied, FamilyStatus::Denied)
    );
}

#[test]
fn a_host_without_network_gets_no_reservation() {
    let mut denied = host()
        .session(NetworkPolicy::denied(), Stderr::Capture)
        .unwrap();
    let ports = block(free_block(1), 1);
    assert_eq!(
        denied.reserve_port(Some(&ports), true).unwrap().err(),
        Some(ErrorCode::AccessDenied)
    );
}
