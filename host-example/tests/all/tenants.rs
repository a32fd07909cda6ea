//! A plugin host's tenants: each confined to its own port block, where the
//! component's answers stay honest (`access-denied` / `denied`, never free).

use crate::common::{block, free_block, host, natively_free};
use port_host::{ErrorCode, FamilyStatus, NetworkPolicy, PortBlock, Session, Stderr};

fn confined(start: u16, len: u16) -> Session {
    let ports = PortBlock::new(u32::from(start)..u32::from(start) + u32::from(len)).unwrap();
    host()
        .session(
            NetworkPolicy::loopback().confined_to(ports),
            Stderr::Capture,
        )
        .unwrap()
}

#[test]
fn inside_its_block_a_tenant_gets_true_answers() {
    let start = free_block(4);
    let mut tenant = confined(start, 4);
    assert_eq!(tenant.is_free_port(start + 3).unwrap(), Ok(true));
    assert_eq!(
        tenant.get_free_port(Some(&block(start, 4)), true).unwrap(),
        Ok(start)
    );
    let reservation = tenant
        .reserve_port(Some(&block(start, 4)), true)
        .unwrap()
        .unwrap();
    assert_eq!(tenant.reservation_port(&reservation).unwrap(), Ok(start));
    assert!(!natively_free(start));
}

#[test]
fn outside_its_block_every_port_is_access_denied_never_free() {
    let start = free_block(8);
    let mut tenant = confined(start, 4);
    let elsewhere = start + 4; // free, but another tenant's
    assert!(natively_free(elsewhere));
    assert_eq!(
        tenant.is_free_port(elsewhere).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(
        tenant
            .get_free_port(Some(&block(elsewhere, 4)), true)
            .unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(
        tenant
            .reserve_port(Some(&block(elsewhere, 4)), true)
            .unwrap()
            .err(),
        Some(ErrorCode::AccessDenied)
    );
    let status = tenant.probe_port(elsewhere).unwrap().unwrap();
    assert_eq!(status.ipv4, FamilyStatus::Denied);
    assert_ne!(status.ipv6, FamilyStatus::Free);
}

#[test]
fn the_os_choice_would_escape_the_block_so_it_is_refused() {
    let start = free_block(4);
    let mut tenant = confined(start, 4);
    // Non-strict with nothing usable asks the OS for a port: a bind to port 0.
    assert_eq!(
        tenant.get_free_port(None, false).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(
        tenant.reserve_port(None, false).unwrap().err(),
        Some(ErrorCode::AccessDenied)
    );
}

#[test]
fn a_search_passes_over_candidates_outside_the_block_to_one_inside() {
    // The refused candidates are never counted free; the search goes on,
    // as it does past a port the OS refuses (a Windows excluded range).
    let start = free_block(8);
    let mut tenant = confined(start + 4, 4);
    let candidates = port_host::Candidates::Explicit(vec![start, start + 1, start + 5]);
    assert_eq!(
        tenant.get_free_port(Some(&candidates), true).unwrap(),
        Ok(start + 5)
    );
    let reservation = tenant
        .reserve_port(Some(&candidates), true)
        .unwrap()
        .unwrap();
    assert_eq!(
        tenant.reservation_port(&reservation).unwrap(),
        Ok(start + 5)
    );
    // Nothing left inside: refused, not "no free port".
    assert_eq!(
        tenant.get_free_port(Some(&candidates), true).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
}
