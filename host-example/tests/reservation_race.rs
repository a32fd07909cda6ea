//! Many callers reserving from one range at once. This file holds one test:
//! it holds 2,000 listening sockets, and counts on every one of them.

mod common;

use common::{block, free_block, host, natively_free};
use port_host::{NetworkPolicy, Stderr};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Barrier;
use std::thread;

const THREADS: usize = 8;
const EACH: usize = 250;
/// Room for other processes on the machine to hold a few ports of the range.
const SLACK: u16 = 200;

/// 2,000 held sockets and the probes beside them pass the 1,024 descriptors
/// many systems allow by default; raise the soft limit towards the hard one.
fn allow_open_files(needed: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls with a valid pointer to a local.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let wanted = (needed as libc::rlim_t).min(limit.rlim_max);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur as usize >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        limit.rlim_max
    );
}

#[test]
fn eight_instances_reserving_at_once_never_share_a_port() {
    let len = (THREADS * EACH) as u16 + SLACK;
    allow_open_files(4 * THREADS * EACH);
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
                        .session(NetworkPolicy::LoopbackTcp, Stderr::Capture)
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
