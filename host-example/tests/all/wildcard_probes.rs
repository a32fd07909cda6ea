//! The component's wildcard probes and guards, which port-host grants on
//! macOS, the BSDs and Windows (`NetworkPolicy::with_wildcard_probes`),
//! run here on Linux with the grant given by hand: the code path is the
//! same, and Linux's rules let it work unchanged. The other systems' rules
//! are checked against models in the root crate's `tests/platform_rules.rs`.

use crate::common::{Holder, free_block, free_port, hold, host, natively_free};
use port_host::{NetworkPolicy, PortBlock, Session, Stderr};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr};

fn probing(block: Option<PortBlock>) -> Session {
    let policy = NetworkPolicy::loopback().with_wildcard_probes(true);
    let policy = match block {
        Some(block) => policy.confined_to(block),
        None => policy,
    };
    host().session(policy, Stderr::Capture).unwrap()
}

/// A bind of `port` on 0.0.0.0 with SO_REUSEADDR, as a dev server makes it.
fn wildcard_bind(port: u16) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    socket.listen(16)?;
    Ok(socket)
}

#[test]
fn with_wildcard_probes_a_free_port_is_free_and_a_wildcard_listener_is_not() {
    let port = free_port();
    let mut session = probing(None);
    assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
    let server = hold(Holder::Ipv4Wildcard, port);
    assert_eq!(session.is_free_port(port).unwrap(), Ok(false));
    drop(server);
    assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
    // The probes closed what they bound.
    assert!(natively_free(port));
}

#[test]
fn with_wildcard_probes_a_reservation_keeps_wildcard_binds_off_and_lets_go_on_release() {
    let start = free_block(2);
    let block = PortBlock::new(u32::from(start)..u32::from(start) + 2).unwrap();
    let mut session = probing(Some(block));
    let candidates = crate::common::block(start, 2);
    let reservation = session
        .reserve_port(Some(&candidates), true)
        .unwrap()
        .unwrap();
    let port = session.reservation_port(&reservation).unwrap().unwrap();
    assert!(wildcard_bind(port).is_err(), "a dev server took {port}");
    session.release(&reservation).unwrap().unwrap();
    assert!(natively_free(port), "the guards outlived the release");
    drop(wildcard_bind(port).unwrap());
}

#[test]
fn with_wildcard_probes_a_taken_socket_still_accepts_and_its_guards_are_gone() {
    let start = free_block(1);
    let mut session = probing(None);
    let reservation = session
        .reserve_port(Some(&crate::common::block(start, 1)), true)
        .unwrap()
        .unwrap();
    let socket = session.take_socket(&reservation).unwrap().unwrap();
    // Held by the taken listener alone now: the port still reads taken.
    assert_eq!(session.is_free_port(start).unwrap(), Ok(false));
    session.close_socket(socket).unwrap();
    session.drop_reservation(reservation).unwrap();
    assert!(natively_free(start));
}
