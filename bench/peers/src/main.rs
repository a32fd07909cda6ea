//! Per-call figures for the Rust crates a user would pick instead of the
//! component, on the cases of `host-example/benches/ports.rs`. Prints one
//! line per case and crate: `case<TAB>peer<TAB>median ns per call`, which
//! `bench/compare` reads. A case a crate has no call for is not printed.

use std::hint::black_box;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

/// Batches per case; the median batch is reported.
const BATCHES: usize = 31;
/// Each batch runs at least this long, so that the clock's grain and one
/// descheduling do not decide a figure.
const BATCH_TIME: Duration = Duration::from_millis(20);

/// Median nanoseconds per call of `call`, over [`BATCHES`] batches.
fn per_call(mut call: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < BATCH_TIME / 4 {
        call();
        calls += 1;
    }
    let per_batch = (calls * 4).max(1);
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                call();
            }
            start.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[BATCHES / 2]
}

fn report(case: &str, peer: &str, ns: f64) {
    println!("{case}\t{peer}\t{ns:.0}");
}

/// `port-peers FREE START`: a free port, and the first of 1000 free ports,
/// both chosen by `bench/compare` for every peer alike.
fn ports() -> Option<(u16, u16)> {
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<u16>().ok());
    let (free, start) = (args.next()??, args.next()??);
    start.checked_add(999).map(|_| (free, start))
}

fn main() {
    let Some((free, start)) = ports() else {
        eprintln!("error: usage: port-peers FREE START (ports; START..START+1000 free)");
        std::process::exit(2)
    };
    // Held ports are held the way the component's benchmark holds them: a
    // listening socket on 127.0.0.1.
    report(
        "is-free-port, free port",
        "portpicker (Rust)",
        per_call(|| assert!(portpicker::is_free(black_box(free)))),
    );
    report(
        "is-free-port, free port",
        "port_check",
        per_call(|| assert!(port_check::is_local_port_free(black_box(free)))),
    );

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("hold a port");
    let held = listener.local_addr().expect("local address").port();
    report(
        "is-free-port, held port",
        "portpicker (Rust)",
        per_call(|| assert!(!portpicker::is_free(black_box(held)))),
    );
    report(
        "is-free-port, held port",
        "port_check",
        per_call(|| assert!(!port_check::is_local_port_free(black_box(held)))),
    );
    drop(listener);

    let _held: Vec<TcpListener> = (start..start + 999)
        .map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("hold the block"))
        .collect();
    let last = start + 999;
    // portpicker has no search over candidates: a user walks them with its
    // `is_free`.
    report(
        "get-free-port, 1000 candidates, first 999 held",
        "portpicker (Rust)",
        per_call(|| {
            let found = (black_box(start)..start + 1000).find(|&p| portpicker::is_free(p));
            assert_eq!(found, Some(last))
        }),
    );
    report(
        "get-free-port, 1000 candidates, first 999 held",
        "port_check",
        per_call(|| {
            let found = port_check::free_local_port_in_range(black_box(start)..start + 1000);
            assert_eq!(found, Some(last))
        }),
    );
    drop(_held);

    report(
        "get-free-port(none, false), OS choice",
        "portpicker (Rust)",
        per_call(|| assert!(portpicker::pick_unused_port().is_some())),
    );
    report(
        "get-free-port(none, false), OS choice",
        "port_check",
        per_call(|| assert!(port_check::free_local_port().is_some())),
    );
}
