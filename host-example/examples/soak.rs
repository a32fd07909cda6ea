//! Soak: the host under long repetition, watched for growth. Three phases,
//! each sampling this process's resident memory (VmRSS) and open descriptors
//! at its start and after every tenth of its work:
//!
//! - 1,000,000 `is-free-port` calls in one instance;
//! - 100,000 fresh sessions (store and instance), one call each;
//! - 100,000 reserve/release cycles in one instance.
//!
//! (Plus a sample after the first call; see [`phase`].)
//!
//! It reports and asserts nothing; `bench/soak` runs it. The goal: each
//! phase's last sample within 1% of its first in memory and equal in
//! descriptors, the first being the one after the first call.
//!
//! ```sh
//! cargo run --release -p port-host --example soak            # the full run
//! cargo run --release -p port-host --example soak -- 0.01    # 1% of it
//! ```

use port_host::{Candidates, NetworkPolicy, PortHost, Stderr};
use std::net::{Ipv4Addr, TcpListener};
use std::time::Instant;

/// Resident memory in KiB, as the kernel counts it.
fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

/// Threads: a thread pool that grows shows in RSS as stacks, not as a leak.
fn threads() -> u64 {
    status_field("Threads:")
}

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux has /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
}

/// Open descriptors; the directory handle that counts them is the same one
/// extra at every sample.
fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux has /proc/self/fd")
        .count()
}

struct Sample {
    done: u64,
    rss_kib: u64,
    descriptors: usize,
    threads: u64,
}

fn sample(done: u64) -> Sample {
    Sample {
        done,
        rss_kib: rss_kib(),
        descriptors: descriptors(),
        threads: threads(),
    }
}

/// Runs `work` `total` times and prints the table: a sample before any
/// work, one after the first call, then one after every tenth.
///
/// The first call sets up what lives as long as the process or the instance
/// (wasmtime-wasi's runtime and its descriptors, the guest's first heap
/// pages), so the goal is judged from the sample after it; the numbers
/// against the sample before it, and against the 10% one (growth that
/// stops early is warm-up; growth that goes on is a leak), are printed too.
fn phase(
    name: &str,
    total: u64,
    mut work: impl FnMut(u64) -> wasmtime::Result<()>,
) -> wasmtime::Result<()> {
    let started = Instant::now();
    let mut samples = vec![sample(0)];
    work(0)?;
    samples.push(sample(1));
    for tenth in 1..=10 {
        let (from, to) = ((total * (tenth - 1) / 10).max(1), total * tenth / 10);
        for i in from..to {
            work(i)?;
        }
        samples.push(sample(to));
    }
    let elapsed = started.elapsed();

    let (before, first) = (&samples[0], &samples[1]);
    println!("### {name}");
    println!();
    println!("| done | RSS (KiB) | RSS vs after 1 | descriptors | vs after 1 | threads |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {} | {} | {:+.2}% | {} | {:+} | {} |",
            s.done,
            s.rss_kib,
            percent(s.rss_kib, first.rss_kib),
            s.descriptors,
            s.descriptors as i64 - first.descriptors as i64,
            s.threads,
        );
    }
    let last = samples.last().expect("twelve samples");
    let rss = percent(last.rss_kib, first.rss_kib);
    let fds = last.descriptors as i64 - first.descriptors as i64;
    println!();
    println!(
        "{total} in {:.1} s ({:.1} µs each). Last sample vs the one after the first call: \
         RSS {rss:+.2}% (goal within 1%: {}), descriptors {fds:+} (goal 0: {}). \
         Vs before any call: RSS {:+.2}%, descriptors {:+}. Vs the 10% sample: \
         RSS {:+.2}%, descriptors {:+}.",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / total as f64,
        met(rss.abs() <= 1.0),
        met(fds == 0),
        percent(last.rss_kib, before.rss_kib),
        last.descriptors as i64 - before.descriptors as i64,
        percent(last.rss_kib, samples[2].rss_kib),
        last.descriptors as i64 - samples[2].descriptors as i64,
    );
    println!();
    Ok(())
}

fn percent(value: u64, base: u64) -> f64 {
    (value as f64 - base as f64) / base as f64 * 100.0
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}

/// A port nothing held when asked; the soak asks about it over and over.
fn os_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("the OS hands out a loopback port")
        .port()
}

fn main() -> wasmtime::Result<()> {
    let scale: f64 = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| wasmtime::format_err!("'{text}' is not a scale (1 = the full soak)"))?,
        None => 1.0,
    };
    let count = |full: f64| ((full * scale) as u64).max(10);
    let host = PortHost::new()?;
    let port = os_port();

    println!("## Soak (scale {scale}): RSS is VmRSS, descriptors the entries of /proc/self/fd\n");

    let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
    phase("is-free-port in one instance", count(1e6), |_| {
        session
            .is_free_port(port)?
            .map_err(|error| wasmtime::format_err!("is-free-port({port}): {error:?}"))?;
        Ok(())
    })?;
    drop(session);

    phase("fresh sessions, one call each", count(1e5), |_| {
        let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
        session
            .is_free_port(port)?
            .map_err(|error| wasmtime::format_err!("is-free-port({port}): {error:?}"))?;
        Ok(())
    })?;

    // Not strict: should another process take the port meanwhile, the OS
    // picks one and the cycle still reserves and releases.
    let ports = Candidates::Explicit(vec![port]);
    let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
    phase("reserve/release cycles in one instance", count(1e5), |_| {
        let reservation = session
            .reserve_port(Some(&ports), false)?
            .map_err(|error| wasmtime::format_err!("reserve-port: {error:?}"))?;
        session
            .release(&reservation)?
            .map_err(|error| wasmtime::format_err!("release: {error:?}"))?;
        session.drop_reservation(reservation)
    })?;
    Ok(())
}
