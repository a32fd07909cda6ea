//! Many callers holding many ports at once: thousands of listening sockets,
//! past the 1,024 descriptors many systems allow by default, so this binary
//! raises its own open-file limit.

mod common;

use common::{allow_open_files, block, free_block, host, natively_free};
use port_host::{ErrorCode, Limits, NetworkPolicy, PortBlock, PortHost, Stderr};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Barrier};
use std::thread;

const THREADS: usize = 8;
const EACH: usize = 250;
/// Room for other processes on the machine to hold a few ports of the range.
const SLACK: u16 = 200;

#[test]
fn eight_instances_reserving_at_once_never_share_a_port() {
    let len = (THREADS * EACH) as u16 + SLACK;
    allow_open_files(4 * (THREADS * EACH) as u64);
    let start = free_block(len);
    let ports = block(start, len);
    let barrier = Barrier::new(THREADS);

    // Each worker returns its session with its reservations still held, so
    // that all 2,000 are held at once when they are checked.
    let workers: Vec<_> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    // Nothing before the barrier can fail, so no worker waits
                    // for one that panicked.
                    barrier.wait();
                    let mut session = host()
                        .session(NetworkPolicy::loopback(), Stderr::Capture)
                        .unwrap();
                    let mut held = Vec::new();
                    for _ in 0..EACH {
                        let reservation = session.reserve_port(Some(&ports), true).unwrap();
                        let reservation = reservation.expect("the range has room for all");
                        let port = session.reservation_port(&reservation).unwrap().unwrap();
                        held.push((reservation, port));
                    }
                    (session, held)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let reserved: Vec<u16> = workers
        .iter()
        .flat_map(|(_, held)| held.iter().map(|&(_, port)| port))
        .collect();
    let distinct: HashSet<u16> = reserved.iter().copied().collect();
    assert_eq!(reserved.len(), THREADS * EACH);
    assert_eq!(distinct.len(), THREADS * EACH, "a port was reserved twice");
    assert!(
        reserved
            .iter()
            .all(|port| (start..start + len).contains(port))
    );
    for &port in &reserved {
        assert!(!natively_free(port), "{port} is reserved yet bindable");
    }

    for (mut session, held) in workers {
        for (reservation, _) in held {
            assert_eq!(session.release(&reservation).unwrap(), Ok(()));
        }
    }
    for port in reserved {
        // Free on both families, and a plain listener may have it.
        assert!(natively_free(port), "{port} still held after release");
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}

#[test]
fn two_hundred_tenants_each_reserve_their_whole_block_and_nothing_else() {
    const TENANTS: u16 = 200;
    const BLOCK: u16 = 10;
    allow_open_files(4 * u64::from(TENANTS * BLOCK));
    let start = free_block(TENANTS * BLOCK);
    let limits = Limits {
        sessions: usize::from(TENANTS),
        ..Limits::default()
    };
    // One engine and one compiled component for every tenant.
    let host = Arc::new(PortHost::embedded(limits).unwrap());
    let tenants = common::runtime().block_on(async {
        let tasks: Vec<_> = (0..TENANTS)
            .map(|tenant| {
                let host = host.clone();
                let first = start + tenant * BLOCK;
                tokio::spawn(async move {
                    let own = PortBlock::new(u32::from(first)..u32::from(first + BLOCK)).unwrap();
                    let policy = NetworkPolicy::loopback().confined_to(own);
                    let mut session = host.async_session(policy, Stderr::Capture).await.unwrap();
                    let mut held = Vec::new();
                    for _ in 0..BLOCK {
                        let reservation = session
                            .reserve_port(Some(&block(first, BLOCK)), true)
                            .await
                            .unwrap()
                            .expect("the block has room for all");
                        let port = session.reservation_port(&reservation).await.unwrap();
                        held.push((reservation, port.unwrap()));
                    }
                    // The next tenant's block (the last one's: the first's).
                    let other = start + (tenant + 1) % TENANTS * BLOCK;
                    let trespass = session
                        .reserve_port(Some(&block(other, BLOCK)), true)
                        .await
                        .unwrap()
                        .err();
                    assert_eq!(trespass, Some(ErrorCode::AccessDenied), "tenant {tenant}");
                    (first, session, held)
                })
            })
            .collect();
        let mut tenants = Vec::new();
        for task in tasks {
            tenants.push(task.await.unwrap());
        }
        tenants
    });

    let mut every = HashSet::new();
    for (first, _, held) in &tenants {
        for &(_, port) in held {
            assert!(
                (*first..first + BLOCK).contains(&port),
                "{port} outside its block"
            );
            assert!(every.insert(port), "{port} reserved twice");
            assert!(!natively_free(port), "{port} is reserved yet bindable");
        }
    }
    assert_eq!(every.len(), usize::from(TENANTS * BLOCK));
    drop(tenants);
    assert!(every.into_iter().all(natively_free));
}

#[test]
fn reserve_ports_holds_a_thousand_ports_in_one_call_and_frees_them_with_the_session() {
    const COUNT: u16 = 1000;
    allow_open_files(4 * u64::from(COUNT));
    let start = free_block(COUNT);
    // A reservation is a live resource; the default quota is 1,000 per store.
    let limits = Limits {
        resources: 2 * usize::from(COUNT),
        ..Limits::default()
    };
    let host = PortHost::embedded(limits).unwrap();
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let held = session
        .reserve_ports(Some(&block(start, COUNT)), COUNT.into(), true)
        .unwrap()
        .unwrap();
    let ports: Vec<u16> = held
        .iter()
        .map(|reservation| session.reservation_port(reservation).unwrap().unwrap())
        .collect();
    assert_eq!(ports, (start..start + COUNT).collect::<Vec<_>>());
    assert!(ports.iter().all(|&port| !natively_free(port)));
    drop(session);
    assert!(ports.into_iter().all(natively_free));
}
