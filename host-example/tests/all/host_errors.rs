//! The host's own failures are types an embedder matches on, and a handle
//! given to the wrong session is refused without harming that session.

use crate::common::{block, free_block, host, natively_free, session};
use port_host::{
    ForeignHandle, Limits, NetworkPolicy, PortHost, Reservation, Session, SessionLimit, Stderr,
};

/// A session holding the first port of a fresh block, and that port.
fn holding() -> (Session, Reservation, u16) {
    let start = free_block(4);
    let mut session = session();
    let reservation = session
        .reserve_port(Some(&block(start, 4)), true)
        .unwrap()
        .unwrap();
    let port = session.reservation_port(&reservation).unwrap().unwrap();
    assert!(!natively_free(port), "{port} is held");
    (session, reservation, port)
}

/// Asserts `b` was not harmed: it answers, and still holds its port.
fn unharmed(b: &mut Session, b_reservation: &Reservation, b_port: u16) {
    assert_eq!(b.ended(), None);
    assert_eq!(b.reservation_port(b_reservation).unwrap(), Ok(b_port));
    assert!(!natively_free(b_port), "{b_port} is still held");
}

fn foreign(error: wasmtime::Error) {
    assert!(error.downcast_ref::<ForeignHandle>().is_some(), "{error:?}");
    assert!(error.to_string().contains("another session"), "{error}");
}

#[test]
fn a_reservation_released_through_another_session_is_refused_and_frees_nothing() {
    let (mut a, a_reservation, a_port) = holding();
    let (mut b, b_reservation, b_port) = holding();
    foreign(b.release(&a_reservation).unwrap_err());
    unharmed(&mut b, &b_reservation, b_port);
    // A's reservation is A's still, and works there.
    assert!(!natively_free(a_port));
    assert_eq!(a.release(&a_reservation).unwrap(), Ok(()));
    assert!(natively_free(a_port));
}

#[test]
fn a_foreign_reservation_is_refused_by_every_call_that_takes_one() {
    let (mut a, a_reservation, a_port) = holding();
    let (mut b, b_reservation, b_port) = holding();
    foreign(b.reservation_port(&a_reservation).unwrap_err());
    unharmed(&mut b, &b_reservation, b_port);
    foreign(b.take_socket(&a_reservation).unwrap_err());
    unharmed(&mut b, &b_reservation, b_port);
    assert_eq!(a.reservation_port(&a_reservation).unwrap(), Ok(a_port));
    foreign(b.drop_reservation(a_reservation).unwrap_err());
    unharmed(&mut b, &b_reservation, b_port);
    assert!(!natively_free(a_port), "A still holds {a_port}");
    assert_eq!(a.ended(), None);
}

#[test]
fn a_foreign_reservation_is_refused_by_the_async_api_too() {
    let runtime = crate::common::runtime();
    runtime.block_on(async {
        let start = free_block(8);
        let mut a = host()
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await
            .unwrap();
        let mut b = host()
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await
            .unwrap();
        let a_reservation = a
            .reserve_port(Some(&block(start, 4)), true)
            .await
            .unwrap()
            .unwrap();
        let b_reservation = b
            .reserve_port(Some(&block(start + 4, 4)), true)
            .await
            .unwrap()
            .unwrap();
        foreign(b.release(&a_reservation).await.unwrap_err());
        foreign(b.take_socket(&a_reservation).await.unwrap_err());
        assert_eq!(b.ended(), None);
        assert_eq!(
            b.reservation_port(&b_reservation).await.unwrap(),
            Ok(start + 4)
        );
        assert_eq!(a.reservation_port(&a_reservation).await.unwrap(), Ok(start));
    });
}

#[test]
fn the_session_limit_is_a_type_with_the_limit() {
    let host = PortHost::embedded(Limits::default().with_sessions(1)).unwrap();
    let first = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let error = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap_err();
    assert_eq!(
        error
            .downcast_ref::<SessionLimit>()
            .map(|limit| limit.limit),
        Some(1),
        "{error:?}"
    );
    // A clone shares the count: it is the same host.
    assert!(
        host.clone()
            .session(NetworkPolicy::loopback(), Stderr::Capture)
            .is_err()
    );
    drop(first);
    assert!(
        host.session(NetworkPolicy::loopback(), Stderr::Capture)
            .is_ok()
    );
}

#[test]
fn a_pool_whose_slots_differ_from_the_store_bounds_is_refused() {
    let limits = Limits::default();
    let mut per_store = limits.store;
    per_store.resources += 1;
    let error = PortHost::pooled(port_host::Pooling::new(2, per_store), limits).unwrap_err();
    assert!(error.to_string().contains("Limits::store"), "{error}");
}

#[test]
fn hosts_and_sessions_say_what_they_are_in_debug() {
    let shown = format!("{:?}", host());
    assert!(shown.starts_with("PortHost {"), "{shown}");
    let mut session = session();
    let shown = format!("{session:?}");
    assert!(shown.contains("ended: None"), "{shown}");
    assert!(session.is_free_port(0).unwrap().is_err());
}

#[test]
fn a_socket_taken_in_one_session_is_refused_by_another_and_closes_nothing_there() {
    let (mut a, a_reservation, a_port) = holding();
    let (mut b, b_reservation, b_port) = holding();
    // Both sockets sit at the same place of their own store's table, so a
    // handle that did not know its session would close B's.
    let a_socket = a.take_socket(&a_reservation).unwrap().unwrap();
    let b_socket = b.take_socket(&b_reservation).unwrap().unwrap();
    foreign(b.close_socket(a_socket).unwrap_err());
    assert_eq!(b.ended(), None);
    assert!(!natively_free(b_port), "B still holds {b_port}");
    assert!(!natively_free(a_port), "A still holds {a_port}");
    b.close_socket(b_socket).unwrap();
    assert!(natively_free(b_port));
    // The refused socket stays A's until A ends.
    drop(a);
    assert!(natively_free(a_port));
}
