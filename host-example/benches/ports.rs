//! Each case times the component (warm instance, through wasmtime) beside
//! native Rust making the same probes with the same socket options, so the
//! ratio is the price of the sandbox. `bench/compare` turns the figures into
//! the README's table.

use criterion::{Criterion, criterion_group, criterion_main};
use port_host::{
    Candidates, Limits, NetworkPolicy, Pooling, PortHost, PortRange, Stderr, StoreBounds,
};
use std::hint::black_box;
use std::net::{Ipv4Addr, TcpListener};

mod native;
// The tests' OS helpers; the benchmark needs only the ephemeral range.
#[allow(dead_code)]
#[path = "../tests/common/os.rs"]
mod os;

/// `len` consecutive ports that are free now, outside the OS's ephemeral
/// range: a benchmark binds and frees the same port hundreds of thousands of
/// times, and an ephemeral one can go to any process's connect in between.
fn free_block(len: u16) -> u16 {
    let (low, high) = os::ephemeral_range();
    let len = u32::from(len);
    let usable = |port: u32| !(low..=high).contains(&port) && native::is_free(port as u16);
    (10_000..(1 << 16) - len)
        .step_by(len as usize)
        .find(|&start| (start..start + len).all(usable))
        .expect("a block of free ports outside the ephemeral range") as u16
}

fn benches(c: &mut Criterion) {
    let host = PortHost::new().unwrap();
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    // The async twin, on the runtime an embedder would have.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut async_session = runtime
        .block_on(host.async_session(NetworkPolicy::loopback(), Stderr::Capture))
        .unwrap();

    let free = free_block(1);
    let mut group = c.benchmark_group("is-free-port, free port");
    group.bench_function("component", |b| {
        b.iter(|| assert!(session.is_free_port(black_box(free)).unwrap().unwrap()))
    });
    group.bench_function("component, async", |b| {
        b.iter(|| {
            let answer = runtime.block_on(async_session.is_free_port(black_box(free)));
            assert!(answer.unwrap().unwrap())
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| assert!(native::is_free(black_box(free))))
    });
    group.finish();

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let held = listener.local_addr().unwrap().port();
    let mut group = c.benchmark_group("is-free-port, held port");
    group.bench_function("component", |b| {
        b.iter(|| assert!(!session.is_free_port(black_box(held)).unwrap().unwrap()))
    });
    group.bench_function("component, async", |b| {
        b.iter(|| {
            let answer = runtime.block_on(async_session.is_free_port(black_box(held)));
            assert!(!answer.unwrap().unwrap())
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| assert!(!native::is_free(black_box(held))))
    });
    group.finish();
    drop(listener);

    let start = free_block(1000);
    let _held: Vec<TcpListener> = (start..start + 999)
        .map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap())
        .collect();
    let last = start + 999;
    let candidates = Candidates::Range(PortRange {
        start: start.into(),
        end: u32::from(start) + 1000,
        step: 1,
    });
    let mut group = c.benchmark_group("get-free-port, 1000 candidates, first 999 held");
    group.sample_size(20);
    group.bench_function("component", |b| {
        b.iter(|| {
            assert_eq!(
                session.get_free_port(Some(&candidates), true).unwrap(),
                Ok(last)
            )
        })
    });
    group.bench_function("component, async", |b| {
        b.iter(|| {
            let answer = runtime.block_on(async_session.get_free_port(Some(&candidates), true));
            assert_eq!(answer.unwrap(), Ok(last))
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| assert_eq!(native::get_free_port(start..start + 1000), last))
    });
    group.finish();

    let mut group = c.benchmark_group("get-free-port(none, false), OS choice");
    group.bench_function("component", |b| {
        b.iter(|| session.get_free_port(None, false).unwrap().unwrap())
    });
    group.bench_function("native", |b| b.iter(native::os_chosen));
    group.finish();

    let free = free_block(1);
    let only_free = Candidates::Explicit(vec![free]);
    let mut group = c.benchmark_group("reserve-port, then release");
    group.bench_function("component", |b| {
        b.iter(|| {
            let held = session.reserve_port(Some(&only_free), true).unwrap();
            let held = held.unwrap();
            session.release(&held).unwrap().unwrap();
            session.drop_reservation(held).unwrap();
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| drop(native::reserve(free).unwrap()))
    });
    group.finish();

    // A reservation's cost as an instance fills a range: the 1st (nothing
    // held) against the 1,000th (999 held by the same instance, all ahead of
    // it in the range). Each iteration reserves, releases and drops one.
    let roomy = PortHost::embedded(
        Limits::default().with_store(StoreBounds::default().with_resources(2_000)),
    )
    .unwrap();
    // Two blocks, so that neither instance walks into the other's ports.
    let thousand = || {
        let start = free_block(1000);
        Candidates::Range(PortRange {
            start: start.into(),
            end: u32::from(start) + 1000,
            step: 1,
        })
    };
    let (first, thousandth) = (thousand(), thousand());
    let mut empty = roomy
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let mut filled = roomy
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let kept: Vec<_> = (0..999)
        .map(|_| {
            filled
                .reserve_port(Some(&thousandth), true)
                .unwrap()
                .unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("reserve-port, 1st vs 1,000th in one instance");
    let cases = [
        ("1st", &mut empty, &first),
        ("1,000th", &mut filled, &thousandth),
    ];
    for (name, session, range) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let held = session.reserve_port(Some(range), true).unwrap().unwrap();
                session.release(&held).unwrap().unwrap();
                session.drop_reservation(held).unwrap();
            })
        });
    }
    group.finish();
    for held in kept {
        filled.drop_reservation(held).unwrap();
    }

    let pooled =
        PortHost::pooled(Pooling::new(16, StoreBounds::default()), Limits::default()).unwrap();
    let mut group = c.benchmark_group("fresh store and instance per call");
    for (name, host) in [
        ("component", &host),
        ("component, pooling allocator", &pooled),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut session = host
                    .session(NetworkPolicy::loopback(), Stderr::Capture)
                    .unwrap();
                assert!(session.is_free_port(free).unwrap().unwrap());
            })
        });
    }
    group.bench_function("component, async, pooling allocator", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut session = pooled
                    .async_session(NetworkPolicy::loopback(), Stderr::Capture)
                    .await
                    .unwrap();
                assert!(session.is_free_port(free).await.unwrap().unwrap());
            })
        })
    });
    group.bench_function("native", |b| b.iter(|| assert!(native::is_free(free))));
    group.finish();

    // The fixed cost alone, with no call: what instantiation adds per request.
    let mut group = c.benchmark_group("fresh store and instance, no call");
    for (name, host) in [
        ("component", &host),
        ("component, pooling allocator", &pooled),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                host.session(NetworkPolicy::loopback(), Stderr::Capture)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(ports, benches);
criterion_main!(ports);
