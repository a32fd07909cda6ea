//! `get-free-port` through wasmtime over ranges and lists the test holds.

use crate::common::{free_block, free_port, listen, natively_free, session};
use port_host::{Candidates, ErrorCode, PortRange};
use std::net::TcpListener;

const WARNING: &str = "warning: no usable ports (>= 1024) were given, so strict mode is disabled\n";

fn range(start: u16, end: u32, step: i32) -> Candidates {
    Candidates::Range(PortRange {
        start: start.into(),
        end,
        step,
    })
}

#[test]
fn range_whose_first_ports_are_held_returns_the_next_free_one() {
    let start = free_block(8);
    let _held: Vec<TcpListener> = (start..start + 3).map(listen).collect();
    let mut session = session();
    let found = session
        .get_free_port(Some(&range(start, u32::from(start) + 8, 1)), true)
        .unwrap();
    assert_eq!(found, Ok(start + 3));
    assert_eq!(session.captured_stderr().as_deref(), Some(""));
}

#[test]
fn explicit_list_is_searched_in_the_given_order() {
    let start = free_block(3);
    let _held = listen(start + 2);
    let ports = Candidates::Explicit(vec![start + 2, start + 1, start]);
    assert_eq!(
        session().get_free_port(Some(&ports), true).unwrap(),
        Ok(start + 1)
    );
}

#[test]
fn descending_range_is_searched_downwards() {
    let start = free_block(5);
    let top = start + 4;
    let _held = listen(top);
    let candidates = range(top, u32::from(start) - 1, -1);
    assert_eq!(
        session().get_free_port(Some(&candidates), true).unwrap(),
        Ok(top - 1)
    );
}

#[test]
fn duplicates_in_a_list_are_harmless() {
    let start = free_block(2);
    let _held = listen(start);
    let ports = Candidates::Explicit(vec![start, start, start, start + 1, start + 1]);
    assert_eq!(
        session().get_free_port(Some(&ports), true).unwrap(),
        Ok(start + 1)
    );
}

#[test]
fn strict_without_free_candidate_names_the_candidates() {
    let start = free_block(3);
    let _held: Vec<TcpListener> = (start..start + 3).map(listen).collect();
    let mut session = session();

    let candidates = range(start, u32::from(start) + 3, 1);
    let expected = format!(
        "No free port can be allocated within range({start}, {})",
        start + 3
    );
    assert_eq!(
        session.get_free_port(Some(&candidates), true).unwrap(),
        Err(ErrorCode::NoFreePort(expected))
    );

    let candidates = range(start, u32::from(start) + 3, 2);
    let expected = format!(
        "No free port can be allocated within range({start}, {}, 2)",
        start + 3
    );
    assert_eq!(
        session.get_free_port(Some(&candidates), true).unwrap(),
        Err(ErrorCode::NoFreePort(expected))
    );

    let candidates = Candidates::Explicit(vec![start + 1, start]);
    let expected = format!(
        "No free port can be allocated within [{}, {start}]",
        start + 1
    );
    assert_eq!(
        session.get_free_port(Some(&candidates), true).unwrap(),
        Err(ErrorCode::NoFreePort(expected))
    );
}

#[test]
fn non_strict_without_free_candidate_returns_a_bindable_port_the_os_picked() {
    let start = free_block(3);
    let held: Vec<TcpListener> = (start..start + 3).map(listen).collect();
    let mut session = session();
    let port = session
        .get_free_port(Some(&range(start, u32::from(start) + 3, 1)), false)
        .unwrap()
        .unwrap();
    assert!(
        !(start..start + 3).contains(&port),
        "returned held port {port}"
    );
    assert!(port >= 1024);
    assert!(natively_free(port), "port {port} is not bindable");
    assert_eq!(
        session.captured_stderr().as_deref(),
        Some(""),
        "non-strict mode never warns"
    );
    drop(held);
}

#[test]
fn strict_without_usable_ports_warns_and_falls_back() {
    for candidates in [
        None,
        Some(range(22, 80, 1)),
        Some(Candidates::Explicit(vec![80, 443, 1023])),
    ] {
        let mut session = session();
        let port = session
            .get_free_port(candidates.as_ref(), true)
            .unwrap()
            .unwrap();
        assert!(
            port >= 1024 && natively_free(port),
            "{candidates:?} gave {port}"
        );
        assert_eq!(
            session.captured_stderr().as_deref(),
            Some(WARNING),
            "{candidates:?}"
        );
    }
}

#[test]
fn empty_and_reversed_ranges_hold_no_usable_port() {
    let port = free_port();
    for candidates in [
        range(port, port.into(), 1),
        range(port, u32::from(port) + 10, -1),
    ] {
        let mut session = session();
        let found = session
            .get_free_port(Some(&candidates), true)
            .unwrap()
            .unwrap();
        assert!(natively_free(found));
        assert_eq!(
            session.captured_stderr().as_deref(),
            Some(WARNING),
            "{candidates:?}"
        );
    }
}

#[test]
fn step_zero_is_invalid_argument() {
    let answer = session()
        .get_free_port(Some(&range(8000, 9000, 0)), true)
        .unwrap();
    assert!(
        matches!(answer, Err(ErrorCode::InvalidArgument(ref m)) if m.contains("step")),
        "{answer:?}"
    );
}

#[test]
fn range_end_beyond_65536_is_invalid_argument() {
    let answer = session()
        .get_free_port(Some(&range(8000, 70000, 1)), true)
        .unwrap();
    assert!(
        matches!(answer, Err(ErrorCode::InvalidArgument(_))),
        "{answer:?}"
    );
}

#[test]
fn full_unprivileged_range_is_searched() {
    // The first port from 1024 up that nothing here holds, asked of the OS.
    // The tests' own blocks lie far above it, so they cannot move it.
    let expected = (1024..=u16::MAX).find(|&port| natively_free(port));
    let port = session()
        .get_free_port(Some(&range(1024, 65536, 1)), true)
        .unwrap();
    assert_eq!(port.ok(), expected);
}

#[test]
fn list_of_every_port_is_searched_past_the_privileged_ones() {
    // 65,536 entries, the first 1,024 of which must be skipped unprobed.
    let start = free_block(4);
    let _held: Vec<TcpListener> = (start..start + 3).map(listen).collect();
    let mut ports: Vec<u16> = (0..1024).collect();
    ports.extend(start..start + 4);
    ports.extend((1024..=u16::MAX).filter(|p| !(start..start + 4).contains(p)));
    assert_eq!(ports.len(), 65536);
    let found = session()
        .get_free_port(Some(&Candidates::Explicit(ports)), true)
        .unwrap();
    assert_eq!(found, Ok(start + 3));
}

#[test]
fn a_session_whose_captured_stderr_is_taken_shows_every_warning_for_ever() {
    // 64 KiB hold about 800 warnings; a full capture loses the newest bytes
    // but never the session, and taking empties it.
    let mut session = session();
    for _ in 0..1_000 {
        session.get_free_port(None, true).unwrap().unwrap();
    }
    let full = session.captured_stderr().unwrap();
    assert!(
        full.len() <= 64 << 10 && full.len() > 60 << 10,
        "{}",
        full.len()
    );
    assert_eq!(session.ended(), None);
    assert_eq!(
        session.take_captured_stderr().as_deref(),
        Some(full.as_str())
    );
    for _ in 0..1_000 {
        session.get_free_port(None, true).unwrap().unwrap();
        assert_eq!(session.take_captured_stderr().as_deref(), Some(WARNING));
    }
}
