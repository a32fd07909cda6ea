//! Inside tokio, where most embedders live: the sync API works there (it
//! steps off the runtime for each call), and the async API answers every
//! export on both kinds of runtime, with a deadline that covers host calls.

use crate::common::{
    block, free_block, free_port, host, hostile_host, listen, natively_free, session,
};
use port_host::{
    AsyncSession, DeadlineExceeded, FamilyStatus, NetworkPolicy, ReservationError, SessionEnded,
    Stderr,
};
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};

fn multi_thread() -> Runtime {
    crate::common::runtime()
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn the_sync_api_answers_inside_a_multi_thread_runtime_without_panicking() {
    let port = free_port();
    let held = listen(0);
    let busy = held.local_addr().unwrap().port();
    let mut session = session();
    let answers = multi_thread().block_on(async move {
        // Inside a task on a worker thread, as an axum handler would call it.
        tokio::spawn(async move {
            let free = session.is_free_port(port).unwrap();
            let taken = session.is_free_port(busy).unwrap();
            let reservation = session
                .reserve_port(Some(&block(port, 1)), true)
                .unwrap()
                .unwrap();
            let reserved = session.reservation_port(&reservation).unwrap();
            session.release(&reservation).unwrap().unwrap();
            (free, taken, reserved)
        })
        .await
        .unwrap()
    });
    assert_eq!(answers, (Ok(true), Ok(false), Ok(port)));
}

#[test]
fn the_sync_api_answers_inside_a_current_thread_runtime_without_panicking() {
    let port = free_port();
    let mut session = session();
    let answer = current_thread().block_on(async { session.is_free_port(port).unwrap() });
    assert_eq!(answer, Ok(true));
}

/// Every export through the async API: the answers, and that reservations
/// hold and free real ports.
async fn every_export(session: &mut AsyncSession) {
    let start = free_block(3);
    let ports = block(start, 3);
    assert_eq!(session.is_free_port(start).await.unwrap(), Ok(true));
    assert_eq!(
        session.get_free_port(Some(&ports), true).await.unwrap(),
        Ok(start)
    );
    let status = session.probe_port(start).await.unwrap().unwrap();
    assert_eq!(status.ipv4, FamilyStatus::Free);

    let first = session
        .reserve_port(Some(&ports), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.reservation_port(&first).await.unwrap(), Ok(start));
    assert!(!natively_free(start));
    assert_eq!(session.is_free_port(start).await.unwrap(), Ok(false));

    let second = session
        .reserve_port(Some(&ports), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.reservation_port(&second).await.unwrap(),
        Ok(start + 1)
    );
    let socket = session.take_socket(&second).await.unwrap().unwrap();
    assert_eq!(
        session.take_socket(&second).await.unwrap().err(),
        Some(ReservationError::SocketTaken)
    );
    assert!(!natively_free(start + 1), "the taken socket holds the port");
    session.close_socket(socket).unwrap();
    assert!(natively_free(start + 1));

    session.release(&first).await.unwrap().unwrap();
    assert_eq!(
        session.release(&first).await.unwrap(),
        Err(ReservationError::Released)
    );
    assert!(natively_free(start));

    let third = session
        .reserve_port(Some(&ports), true)
        .await
        .unwrap()
        .unwrap();
    session.drop_reservation(third).await.unwrap();
    session.drop_reservation(first).await.unwrap();
    session.drop_reservation(second).await.unwrap();
    assert!((start..start + 3).all(natively_free));
}

#[test]
fn the_async_api_answers_every_export_on_a_multi_thread_runtime() {
    multi_thread().block_on(async {
        let mut session = host()
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await
            .unwrap();
        every_export(&mut session).await;
    });
}

#[test]
fn the_async_api_answers_every_export_on_a_current_thread_runtime() {
    current_thread().block_on(async {
        let mut session = host()
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await
            .unwrap();
        every_export(&mut session).await;
    });
}

/// A guest stuck in `behaviour` is ended by the deadline, promptly, with an
/// error that names it; the session is finished and says so; a second session
/// of the same host answered meanwhile and still answers.
async fn ended_by_the_deadline(behaviour: u16) {
    let timeout = Duration::from_millis(500);
    let host = hostile_host(timeout);
    let mut stuck = host
        .async_session(NetworkPolicy::loopback(), Stderr::Capture)
        .await
        .unwrap();
    let mut other = host
        .async_session(NetworkPolicy::loopback(), Stderr::Capture)
        .await
        .unwrap();
    let port = free_port();
    let started = Instant::now();
    let (stuck_answer, other_answer) =
        tokio::join!(stuck.is_free_port(behaviour), other.is_free_port(port));
    let took = started.elapsed();
    let error = stuck_answer.unwrap_err();
    assert_eq!(
        error
            .downcast_ref::<DeadlineExceeded>()
            .map(|late| late.timeout),
        Some(timeout),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the component ran past its 0.5 s deadline and was stopped"
    );
    // Never before the deadline; after it, soon. The bound is loose on
    // purpose: on a loaded 2-core machine a timer may fire late, and a guest
    // the deadline failed to stop would never come back at all.
    assert!(took >= timeout, "ended early, after {took:?}");
    assert!(took < timeout * 10, "ended after {took:?}");
    assert_eq!(other_answer.unwrap(), Ok(true));
    let again = stuck.is_free_port(port).await.unwrap_err();
    let ended = again.downcast_ref::<SessionEnded>().expect("a typed end");
    assert_eq!(ended.cause, error.to_string());
    assert!(
        again.to_string().contains("this session has ended"),
        "{again}"
    );
    assert_eq!(other.is_free_port(port).await.unwrap(), Ok(true));
}

#[test]
fn a_guest_blocked_in_a_host_call_is_ended_by_the_async_deadline() {
    multi_thread().block_on(ended_by_the_deadline(1));
}

#[test]
fn a_spinning_guest_yields_and_is_ended_by_the_async_deadline_on_one_thread() {
    // One thread: the timer only fires because the guest yields at each tick.
    current_thread().block_on(ended_by_the_deadline(3));
}

#[test]
fn many_async_sessions_on_one_engine_answer_concurrently() {
    let start = free_block(50);
    multi_thread().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50 {
            tasks.push(tokio::spawn(async move {
                let mut session = host()
                    .async_session(NetworkPolicy::loopback(), Stderr::Capture)
                    .await
                    .unwrap();
                session.is_free_port(start + i).await.unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(true));
        }
    });
}

#[test]
fn a_sync_session_ends_a_spinning_or_blocked_guest_at_its_deadline_on_its_own_runtime() {
    // The sync session drives its calls on a current-thread runtime of its
    // own: the deadline's timer fires there only because the guest yields at
    // each epoch tick (spinning) or waits on the runtime (blocked in accept).
    let timeout = Duration::from_millis(500);
    let host = hostile_host(timeout);
    for behaviour in [3, 1] {
        let mut stuck = host
            .session(NetworkPolicy::loopback(), Stderr::Capture)
            .unwrap();
        let started = Instant::now();
        let error = stuck.is_free_port(behaviour).unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            error
                .downcast_ref::<DeadlineExceeded>()
                .map(|late| late.timeout),
            Some(timeout),
            "behaviour {behaviour}: {error:?}"
        );
        assert!(took >= timeout, "ended early, after {took:?}");
        assert!(took < timeout * 10, "ended after {took:?}");
    }
}
