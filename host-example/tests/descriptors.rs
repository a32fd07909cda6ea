//! No call may leave a descriptor behind, and no tenant may take more than
//! its quota of them. These tests count the process's open descriptors, so
//! they live in a binary of their own and take turns.

mod common;

use common::{block, free_block, free_port, hostile_host, listen, open_descriptors, session};
use port_host::{Candidates, Limits, NetworkPolicy, PortHost, PortRange, Stderr, StoreBounds};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held by each test, so that no other test's sockets move the count.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The turn of a test that counts descriptors; `None` where the OS does not
/// count them (and the test says it was skipped).
fn counting_turn() -> Option<std::sync::MutexGuard<'static, ()>> {
    common::counts_descriptors("descriptors.rs, the tests that count descriptors")
        .then(one_at_a_time)
}

#[test]
fn ten_thousand_calls_leave_the_descriptor_count_unchanged() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let mut session = session();
    let free = free_port();
    let held = listen(0);
    let busy = held.local_addr().unwrap().port();
    let candidates = Candidates::Range(PortRange {
        start: busy.into(),
        end: u32::from(busy) + 1,
        step: 1,
    });
    // One call of each kind first, so that lazily opened host state is counted in `before`.
    session.is_free_port(free).unwrap().unwrap();
    session.get_free_port(None, false).unwrap().unwrap();

    let before = open_descriptors();
    for i in 0..10_000 {
        match i % 4 {
            0 => assert_eq!(session.is_free_port(free).unwrap(), Ok(true)),
            1 => assert_eq!(session.is_free_port(busy).unwrap(), Ok(false)),
            2 => assert!(
                session
                    .get_free_port(Some(&candidates), true)
                    .unwrap()
                    .is_err()
            ),
            _ => assert!(session.get_free_port(None, false).unwrap().is_ok()),
        }
    }
    assert_eq!(open_descriptors(), before);
}

#[test]
fn ten_thousand_reserve_and_release_cycles_leave_the_descriptor_count_unchanged() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let start = free_block(4);
    let ports = block(start, 4);
    let mut session = session();
    // One cycle first, so that lazily opened host state is counted in `before`.
    let warm = session.reserve_port(Some(&ports), true).unwrap().unwrap();
    session.release(&warm).unwrap().unwrap();
    session.drop_reservation(warm).unwrap();

    let before = open_descriptors();
    for i in 0..10_000 {
        let reservation = session.reserve_port(Some(&ports), true).unwrap().unwrap();
        // Every way a reservation ends: released, dropped, socket taken and closed.
        match i % 3 {
            0 => {
                session.release(&reservation).unwrap().unwrap();
                session.drop_reservation(reservation).unwrap();
            }
            1 => session.drop_reservation(reservation).unwrap(),
            _ => {
                let socket = session.take_socket(&reservation).unwrap().unwrap();
                session.close_socket(socket).unwrap();
                session.drop_reservation(reservation).unwrap();
            }
        }
    }
    assert_eq!(open_descriptors(), before);
}

#[test]
fn a_hostile_tenant_stops_at_its_quota_and_gives_every_descriptor_back() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let wasm = std::fs::read(test_guests::ESCAPE_GUEST).unwrap();
    let limits = Limits::default().with_store(StoreBounds::default().with_resources(500));
    let hostile_host = PortHost::from_bytes(&wasm, limits).unwrap();
    let mut neighbour = session();
    let port = free_port();
    assert_eq!(neighbour.is_free_port(port).unwrap(), Ok(true));

    // The host's own descriptors (its memory image, made at the first
    // instantiation) are the host's, not the tenant's: count from after them.
    drop(hostile_host.session(NetworkPolicy::loopback(), Stderr::Capture));
    let before = open_descriptors();
    let mut hostile = hostile_host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    // is-free-port(2): open sockets, never close one, until refused.
    let error = hostile.is_free_port(2).unwrap_err().to_string();
    assert_eq!(
        error,
        "the component went over its quota of 500 live sockets, streams and pollables \
         and was stopped"
    );
    let during = open_descriptors();
    assert!(
        during - before <= 500,
        "the tenant holds {} descriptors",
        during - before
    );
    // Meanwhile the host and other tenants carry on.
    assert_eq!(neighbour.is_free_port(port).unwrap(), Ok(true));
    let file = std::fs::File::open(env!("CARGO_MANIFEST_DIR"));
    assert!(file.is_ok(), "the host cannot open a file: {file:?}");
    drop(file);

    drop(hostile);
    assert_eq!(open_descriptors(), before);
}

/// Asserts that `error` and then the session's next call say it ended and
/// why, and that the session no longer holds a descriptor.
fn assert_ended(error: wasmtime::Error, next: wasmtime::Error, why: &str, before: usize) {
    assert!(format!("{error:#}").contains(why), "{error:#}");
    let next = next.to_string();
    assert!(next.starts_with("this session has ended: "), "{next}");
    assert!(next.contains(why), "{next}");
    assert_eq!(
        open_descriptors(),
        before,
        "the ended session kept descriptors"
    );
}

#[test]
fn a_sync_session_blocked_in_accept_ends_within_its_deadline_and_frees_its_socket() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let host = hostile_host(Duration::from_secs(1));
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let before = open_descriptors();
    let started = Instant::now();
    // The guest listens, then waits in `accept` inside a host call.
    let error = session.is_free_port(1).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    let next = session.is_free_port(5).unwrap_err();
    assert_ended(error, next, "ran past its 1 s deadline", before);
    assert!(session.ended().is_some());
}

#[test]
fn after_a_trap_the_next_call_says_so_and_the_sockets_are_already_closed() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let host = hostile_host(Duration::from_secs(30));
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let before = open_descriptors();
    // The guest opens 8 sockets, then traps.
    let error = session.is_free_port(4).unwrap_err();
    assert_eq!(
        error.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::UnreachableCodeReached),
        "{error:?}"
    );
    let next = session.is_free_port(5).unwrap_err();
    assert_ended(error, next, "trapped", before);
}

#[test]
fn after_a_dropped_future_the_next_call_says_so_and_the_socket_is_already_closed() {
    let Some(_turn) = counting_turn() else {
        return;
    };
    let runtime = common::runtime();
    let host = hostile_host(Duration::from_secs(30));
    let mut session = runtime
        .block_on(host.async_session(NetworkPolicy::loopback(), Stderr::Capture))
        .unwrap();
    let before = open_descriptors();
    // The caller gives up on a guest waiting in `accept`: its future is dropped.
    let gave_up = runtime.block_on(async {
        tokio::time::timeout(Duration::from_millis(200), session.is_free_port(1)).await
    });
    assert!(gave_up.is_err(), "the guest was to wait in accept");
    assert!(session.ended().is_some());
    assert_eq!(
        open_descriptors(),
        before,
        "the dropped call kept descriptors"
    );
    let next = runtime.block_on(session.is_free_port(5)).unwrap_err();
    assert!(next.to_string().contains("cancelled"), "{next}");
}

#[test]
fn an_ended_session_gives_back_its_place_among_the_hosts_sessions() {
    let _turn = one_at_a_time();
    let wasm = std::fs::read(test_guests::ESCAPE_GUEST).unwrap();
    let limits = Limits::default().with_sessions(1);
    let host = PortHost::from_bytes(&wasm, limits).unwrap();
    let mut first = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    assert!(
        host.session(NetworkPolicy::loopback(), Stderr::Capture)
            .is_err(),
        "one session at a time"
    );
    first.is_free_port(4).unwrap_err();
    // `first` is still in scope, but ended: its place is free.
    let mut second = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    assert_eq!(second.is_free_port(5).unwrap(), Ok(true));
}
