//! Many callers holding many ports at once: thousands of listening sockets,
//! and thousands of ports the OS picks for one `get-free-ports`, past the
//! 1,024 descriptors many systems allow by default, so this binary raises its
//! own open-file limit.

mod common;

use common::{
    allow_open_files, block, ephemeral_ports, free_block, host, listen, natively_free, skipped,
};
use port_host::{
    ErrorCode, Limits, NetworkPolicy, PortBlock, PortHost, Session, Stderr, StoreBounds,
};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

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
    let limits = Limits::default().with_sessions(usize::from(TENANTS));
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
    // A reservation is a live resource, one socket or (where the policy
    // grants the wildcard probes: macOS, Windows) three; the default quota
    // is 1,000 per store.
    let network = NetworkPolicy::loopback();
    let sockets = usize::from(COUNT) * network.sockets_per_reservation();
    let limits = Limits::default().with_store(StoreBounds::default().with_resources(2 * sockets));
    let host = PortHost::embedded(limits).unwrap();
    let mut session = host.session(network, Stderr::Capture).unwrap();
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

/// Raises the open-file limit to `files`, or records why `what` cannot run
/// here (a hard limit below it) and says so.
fn room_for(files: u64, what: &str) -> bool {
    let (_, hard) = common::open_file_limits();
    if hard < files {
        skipped(&format!(
            "{what}: needs {files} open files, the hard limit is {hard}"
        ));
        return false;
    }
    allow_open_files(files);
    true
}

/// Taken by each test that fills from the OS: the ports one test's call has
/// just let go are the free ports another's is most likely to be given, and
/// would read as still busy.
static EPHEMERAL_RANGE: Mutex<()> = Mutex::new(());

/// A session whose store may hold `sockets` sockets at once, beyond the few
/// every session has: what `get-free-ports` needs to fill `sockets` ports
/// from the OS.
fn session_holding(sockets: u32) -> Session {
    let limits =
        Limits::default().with_store(StoreBounds::default().with_resources(sockets as usize + 16));
    PortHost::embedded(limits)
        .unwrap()
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap()
}

#[test]
fn get_free_ports_takes_1000_and_5000_distinct_ports_from_the_os_and_lets_them_go() {
    let _alone = EPHEMERAL_RANGE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for count in [1000u32, 5000] {
        let what = format!("get-free-ports(none, {count}, false)");
        if !room_for(u64::from(count) * 2 + 256, &what) {
            continue;
        }
        let mut session = session_holding(count);
        let started = Instant::now();
        let ports = session.get_free_ports(None, count, false).unwrap();
        let took = started.elapsed();
        let ports = ports.unwrap_or_else(|error| panic!("{what}: {error:?}"));
        println!("{what} took {took:?}");

        assert_eq!(ports.len(), count as usize);
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{what} gave a port twice");
        let ephemeral = ephemeral_ports();
        assert!(ports.iter().all(|port| ephemeral.contains(port)));
        // A snapshot: the call let every port go before it returned. Other
        // processes may take a few of the ephemeral range meanwhile; a call
        // that kept its sockets would leave all of them busy.
        let busy = ports.iter().filter(|&&port| !natively_free(port)).count();
        assert!(
            busy <= ports.len() / 100,
            "{busy} of {count} ports still busy after {what} returned"
        );
    }
}

#[test]
fn too_few_free_candidates_without_strict_are_topped_up_to_1000_by_the_os() {
    const COUNT: u32 = 1000;
    if !room_for(
        u64::from(COUNT) * 2 + 256,
        "get-free-ports over 10 candidates, 1000",
    ) {
        return;
    }
    let _alone = EPHEMERAL_RANGE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let start = free_block(10);
    let _held = [start + 2, start + 5, start + 7].map(listen);
    let mut session = session_holding(COUNT);
    let ports = session
        .get_free_ports(Some(&block(start, 10)), COUNT, false)
        .unwrap()
        .unwrap();
    let free: Vec<u16> = [0, 1, 3, 4, 6, 8, 9].map(|offset| start + offset).into();
    assert_eq!(ports[..free.len()], free[..], "the free candidates first");
    assert_eq!(ports.len(), COUNT as usize);
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port given twice");
    let ephemeral = ephemeral_ports();
    assert!(
        ports[free.len()..]
            .iter()
            .all(|port| ephemeral.contains(port))
    );
}
