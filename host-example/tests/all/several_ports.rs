//! `get-free-ports` and `reserve-ports` (0.3.0): several ports in one call,
//! through the sync and async sessions. The `--count` option of the CLI is
//! tested in `tests/several_ports_cli.rs`.

use crate::common::{block, free_block, listen, natively_free, runtime, session};
use port_host::{Candidates, ErrorCode, NetworkPolicy, PortBlock, Stderr};
use std::collections::HashSet;

fn no_free_port(message: &str) -> ErrorCode {
    ErrorCode::NoFreePort(message.into())
}

#[test]
fn get_free_ports_returns_the_first_count_free_ports_in_order_for_1_10_and_1000() {
    let mut session = session();
    for count in [1u16, 10, 1000] {
        let start = free_block(count);
        let found = session
            .get_free_ports(Some(&block(start, count)), count.into(), true)
            .unwrap();
        assert_eq!(found, Ok((start..start + count).collect()), "count {count}");
    }
}

#[test]
fn get_free_ports_skips_held_ports_and_keeps_the_candidates_order() {
    let start = free_block(6);
    let _held = [listen(start + 1), listen(start + 4)];
    let descending = Candidates::Range(port_host::PortRange {
        start: u32::from(start) + 5,
        end: u32::from(start) - 1,
        step: -1,
    });
    let mut session = session();
    assert_eq!(
        session.get_free_ports(Some(&descending), 3, true).unwrap(),
        Ok(vec![start + 5, start + 3, start + 2])
    );
}

#[test]
fn a_port_listed_twice_is_returned_once() {
    let start = free_block(3);
    let (a, b, c) = (start, start + 1, start + 2);
    let list = Candidates::Explicit(vec![a, a, b, a, b, c, c]);
    let mut session = session();
    assert_eq!(
        session.get_free_ports(Some(&list), 3, true).unwrap(),
        Ok(vec![a, b, c])
    );
    let too_many = format!(
        "No 4 free ports can be allocated within [{a}, {a}, {b}, {a}, {b}, {c}, {c}]: only 3 are free"
    );
    assert_eq!(
        session.get_free_ports(Some(&list), 4, true).unwrap(),
        Err(no_free_port(&too_many))
    );
    let held = session
        .reserve_ports(Some(&list), 3, true)
        .unwrap()
        .unwrap();
    let ports: Vec<u16> = held
        .iter()
        .map(|r| session.reservation_port(r).unwrap().unwrap())
        .collect();
    assert_eq!(ports, [a, b, c]);
}

#[test]
fn too_few_free_while_strict_is_no_free_port_saying_how_many_were_free() {
    let start = free_block(5);
    let _held = [listen(start), listen(start + 2)];
    let message = format!(
        "No 4 free ports can be allocated within range({start}, {}): only 3 are free",
        start + 5
    );
    let mut session = session();
    assert_eq!(
        session
            .get_free_ports(Some(&block(start, 5)), 4, true)
            .unwrap(),
        Err(no_free_port(&message))
    );
    assert_eq!(
        session
            .reserve_ports(Some(&block(start, 5)), 4, true)
            .unwrap()
            .err(),
        Some(no_free_port(&message))
    );
}

#[test]
fn too_few_free_without_strict_are_completed_with_distinct_os_choices() {
    let start = free_block(5);
    let _held = [listen(start), listen(start + 2)];
    let mut session = session();
    let found = session
        .get_free_ports(Some(&block(start, 5)), 8, false)
        .unwrap()
        .unwrap();
    assert_eq!(found[..3], [start + 1, start + 3, start + 4]);
    assert_eq!(found.len(), 8);
    assert_eq!(found.iter().collect::<HashSet<_>>().len(), 8, "{found:?}");
    assert!(
        found[3..]
            .iter()
            .all(|&p| p >= 1024 && !(start..start + 5).contains(&p))
    );

    let held = session
        .reserve_ports(Some(&block(start, 5)), 5, false)
        .unwrap()
        .unwrap();
    let ports: Vec<u16> = held
        .iter()
        .map(|r| session.reservation_port(r).unwrap().unwrap())
        .collect();
    assert_eq!(ports[..3], [start + 1, start + 3, start + 4]);
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 5, "{ports:?}");
    for &port in &ports {
        assert!(!natively_free(port), "{port} is reserved yet bindable");
    }
}

#[test]
fn a_count_of_0_or_above_64512_is_invalid() {
    let mut session = session();
    for count in [0, 64_513, u32::MAX] {
        let found = session.get_free_ports(None, count, false).unwrap();
        assert!(
            matches!(found, Err(ErrorCode::InvalidArgument(ref m)) if m.contains("count")),
            "{count}: {found:?}"
        );
        let held = session.reserve_ports(None, count, false).unwrap().err();
        assert!(
            matches!(held, Some(ErrorCode::InvalidArgument(ref m)) if m.contains("count")),
            "{count}: {held:?}"
        );
    }
}

#[test]
fn reserve_ports_holds_1_and_10_ports_until_released() {
    let mut session = session();
    for count in [1u16, 10] {
        let start = free_block(count);
        let held = session
            .reserve_ports(Some(&block(start, count)), count.into(), true)
            .unwrap()
            .unwrap();
        let ports: Vec<u16> = held
            .iter()
            .map(|r| session.reservation_port(r).unwrap().unwrap())
            .collect();
        assert_eq!(ports, (start..start + count).collect::<Vec<_>>());
        assert!(ports.iter().all(|&port| !natively_free(port)));
        for reservation in &held {
            assert_eq!(session.release(reservation).unwrap(), Ok(()));
        }
        assert!(ports.into_iter().all(natively_free));
    }
}

#[test]
fn a_failed_strict_reserve_ports_leaves_every_port_of_the_block_free() {
    let start = free_block(6);
    let outsider = listen(start + 5);
    let mut session = session();
    let answer = session
        .reserve_ports(Some(&block(start, 6)), 6, true)
        .unwrap()
        .err();
    assert!(
        matches!(answer, Some(ErrorCode::NoFreePort(_))),
        "{answer:?}"
    );
    assert!((start..start + 5).all(natively_free));
    // Nor does the instance think it still holds them: all five come back.
    drop(outsider);
    let held = session
        .reserve_ports(Some(&block(start, 5)), 5, true)
        .unwrap()
        .unwrap();
    assert_eq!(held.len(), 5);
}

#[test]
fn a_reserve_ports_refused_midway_releases_what_it_had_taken() {
    let start = free_block(6);
    // The sandbox lets the component bind only the first three candidates.
    let first_three = PortBlock::new(u32::from(start)..u32::from(start) + 3).unwrap();
    let mut session = crate::common::host()
        .session(
            NetworkPolicy::loopback().confined_to(first_three),
            Stderr::Capture,
        )
        .unwrap();
    let answer = session
        .reserve_ports(Some(&block(start, 6)), 6, true)
        .unwrap()
        .err();
    assert_eq!(answer, Some(ErrorCode::AccessDenied));
    assert!((start..start + 6).all(natively_free));
}

#[test]
fn the_async_session_finds_and_reserves_several_ports_alike() {
    let start = free_block(4);
    let ports = block(start, 4);
    runtime().block_on(async {
        let mut session = crate::common::host()
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await
            .unwrap();
        let found = session.get_free_ports(Some(&ports), 4, true).await.unwrap();
        assert_eq!(found, Ok((start..start + 4).collect()));
        let held = session
            .reserve_ports(Some(&ports), 4, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.len(), 4);
        assert!((start..start + 4).all(|port| !natively_free(port)));
        let none = session.reserve_ports(Some(&ports), 1, true).await.unwrap();
        assert!(matches!(none, Err(ErrorCode::NoFreePort(_))));
    });
    assert!((start..start + 4).all(natively_free));
}
