//! Tenants at scale: N async sessions on one engine, each confined to a
//! block of its own, measured and checked.
//!
//! ```sh
//! cargo run --release -p port-host --example tenants                   # 1, 100, 1,000 and 10,000
//! cargo run --release -p port-host --example tenants -- --tenants 200  # one run, as CI does
//! cargo run --release -p port-host --example tenants -- --tenants 10000 --allocator pooled
//! cargo run --release -p port-host --example tenants -- --tenants 10000 --runtime current-thread
//! ```
//!
//! Each run makes N sessions (`NetworkPolicy::loopback().confined_to(block)`),
//! then every tenant reserves a port in its own block at once, then one
//! tenant reserves and releases again and again while all of them hold theirs.
//! It prints session creation time, resident memory and memory mappings per
//! session, the time for all N to reserve, the warm reserve's p50 and p99
//! beside its native twin's (the same syscalls made directly, right after
//! each call) with a histogram of both, and the descriptors before, while
//! held and after. Without `--tenants` it runs each N in a fresh process, so
//! that no run inherits another's memory, and ends with the table.
//!
//! It exits non-zero when an invariant fails: every port distinct, every port
//! inside its tenant's block, a neighbour's block refused, and the process's
//! descriptors back where they were once every session is gone. It asserts
//! no time: the figures are for reading.
//!
//! Blocks are 3 ports: 10,000 tenants need 10,000 disjoint blocks outside the
//! OS's ephemeral range, where 4-port blocks (40,000 ports) do not fit in the
//! ~36,000 ports left; 3 lets the measured tenant hold one port and still
//! reserve, release and walk on over the other two.

use port_host::{
    Candidates, ErrorCode, Limits, NetworkPolicy, Pooling, PortBlock, PortHost, PortRange, Stderr,
    StoreBounds,
};
use socket2::{Domain, Socket, Type};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ports bench's native twins; this example times `reserve` only.
#[allow(dead_code)]
#[path = "../benches/native/mod.rs"]
mod native;

/// The ladder a run without `--tenants` climbs.
const LADDER: [usize; 4] = [1, 100, 1_000, 10_000];
/// Ports per tenant (see the module comment for why 3).
const BLOCK: u32 = 3;
/// Reserve-port calls timed for the p50 and p99, after as many to warm up.
const WARM_CALLS: usize = 2_000;
/// Live resources per store: the component needs 2, plus one per reservation
/// it holds, and the measured tenant holds two at most. Small, so that the
/// host-wide descriptor bound (`sessions × resources`) stays a number the
/// open-file limit can be raised to.
const RESOURCES: usize = 8;
/// Descriptors of the host's own beyond the tenants' (runtime, memory image,
/// stdio, the /proc reads), with room to spare.
const HOST_DESCRIPTORS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Allocator {
    Pooled,
    OnDemand,
}

impl Allocator {
    fn name(self) -> &'static str {
        match self {
            Allocator::Pooled => "pooled",
            Allocator::OnDemand => "on-demand",
        }
    }
}

/// The tokio runtime the run's tasks and calls are on: most embedders run
/// the multi-thread one; the current-thread one takes tokio's scheduling
/// (worker wake-ups, the I/O driver on another thread) out of the figures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    MultiThread,
    CurrentThread,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::MultiThread => "multi-thread",
            Runtime::CurrentThread => "current-thread",
        }
    }
}

struct Args {
    tenants: Option<usize>,
    allocator: Allocator,
    runtime: Runtime,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        tenants: None,
        // The library's default (`PortHost::embedded`); `pooled` is the
        // other choice a plugin host has.
        allocator: Allocator::OnDemand,
        runtime: Runtime::MultiThread,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--tenants" => {
                let n = value("--tenants")?;
                args.tenants = Some(
                    n.replace(['_', ','], "")
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--tenants {n}: not a positive number"))?,
                );
            }
            "--allocator" => {
                args.allocator = match value("--allocator")?.as_str() {
                    "pooled" => Allocator::Pooled,
                    "on-demand" => Allocator::OnDemand,
                    other => return Err(format!("--allocator {other}: pooled or on-demand")),
                }
            }
            "--runtime" => {
                args.runtime = match value("--runtime")?.as_str() {
                    "multi-thread" => Runtime::MultiThread,
                    "current-thread" => Runtime::CurrentThread,
                    other => {
                        return Err(format!("--runtime {other}: multi-thread or current-thread"));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: tenants [--tenants N] \
                     [--allocator pooled|on-demand] [--runtime multi-thread|current-thread]"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match args.tenants {
        Some(n) => {
            let runtime = match args.runtime {
                Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
                Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            }
            .enable_all()
            .build()
            .expect("a tokio runtime");
            match runtime.block_on(run(n, args.allocator, args.runtime)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    println!("FAILED: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        None => ladder(args.allocator, args.runtime),
    }
}

/// Each N of [`LADDER`] in a process of its own, then the table.
fn ladder(allocator: Allocator, runtime: Runtime) -> ExitCode {
    let exe = std::env::current_exe().expect("the example's own path");
    let mut rows = Vec::new();
    let mut ok = true;
    for n in LADDER {
        let mut child = Command::new(&exe)
            .args(["--tenants", &n.to_string(), "--allocator", allocator.name()])
            .args(["--runtime", runtime.name()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example runs itself");
        let stdout = child.stdout.take().expect("piped");
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with('|') {
                rows.push(line);
            } else {
                println!("{line}");
            }
        }
        ok &= child.wait().is_ok_and(|status| status.success());
        println!();
    }
    println!(
        "| tenants | session creation, each | RSS per idle session | maps per session \
         | all reserving at once | warm reserve, one tenant (p50 / p99) | its native twin (p50 / p99) \
         | descriptors before / held / after |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        println!("FAILED: a run above failed");
        ExitCode::FAILURE
    }
}

/// One run at `n` tenants. `Ok(false)` when an invariant failed.
async fn run(n: usize, allocator: Allocator, runtime: Runtime) -> wasmtime::Result<bool> {
    // Every bound a hostile tenant meets stays at its default but the
    // live resources; the pool's slots are sized by the very same bounds.
    let store = StoreBounds::default().with_resources(RESOURCES);
    // The tenants, and the session that warms the host up.
    let limits = Limits::default().with_sessions(n + 1).with_store(store);
    println!(
        "{n} tenants, one engine, {} allocator, tokio {} runtime; per store: {} live resources, \
         {} MiB, {} instances, {} memories, {} tables",
        allocator.name(),
        runtime.name(),
        store.resources,
        store.memory_bytes >> 20,
        store.instances,
        store.memories,
        store.tables,
    );
    raise_open_file_limit(
        limits.host_descriptor_bound() + HOST_DESCRIPTORS,
        n + HOST_DESCRIPTORS,
    )?;

    let blocks = free_blocks(n)?;
    let made = Instant::now();
    let host = Arc::new(match allocator {
        Allocator::Pooled => {
            PortHost::pooled(Pooling::new(u32::try_from(limits.sessions)?, store), limits)?
        }
        Allocator::OnDemand => PortHost::embedded(limits)?,
    });
    println!(
        "host: made in {:.1?}, the build's native code loaded: {}",
        made.elapsed(),
        if host.loaded_precompiled() {
            "yes"
        } else {
            "no, compiled here"
        }
    );
    // The host maps its component's memory image at its first session, once:
    // a descriptor and mappings of the host's, not of any tenant.
    drop(
        host.async_session(NetworkPolicy::denied(), Stderr::Capture)
            .await?,
    );
    let before = Sample::now();

    // Sessions, one after another, each into its own block.
    let mut creation = Vec::with_capacity(n);
    let mut sessions = Vec::with_capacity(n);
    for block in &blocks {
        let policy = NetworkPolicy::loopback().confined_to(PortBlock::new(block.clone())?);
        let started = Instant::now();
        sessions.push(host.async_session(policy, Stderr::Capture).await?);
        creation.push(started.elapsed());
    }
    let idle = Sample::now();
    let total_creation: Duration = creation.iter().sum();
    creation.sort();
    println!(
        "sessions: {n} made in {:.2?}: {} each on average (p50 {}, p99 {})",
        total_creation,
        micros(total_creation / n as u32),
        micros(percentile(&creation, 50)),
        micros(percentile(&creation, 99)),
    );

    // Every tenant reserves a port in its own block, all at once.
    let start = Arc::new(tokio::sync::Barrier::new(n + 1));
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(&blocks)
        .map(|(mut session, block)| {
            let start = start.clone();
            let candidates = candidates(block);
            tokio::spawn(async move {
                start.wait().await;
                let held = async {
                    let reservation = session.reserve_port(Some(&candidates), true).await?;
                    let reservation = reservation.map_err(|e| wasmtime::format_err!("{e:?}"))?;
                    let port = session.reservation_port(&reservation).await?;
                    let port = port.map_err(|e| wasmtime::format_err!("{e:?}"))?;
                    Ok::<_, wasmtime::Error>((reservation, port))
                }
                .await;
                (session, held)
            })
        })
        .collect();
    start.wait().await;
    let all_at_once = Instant::now();
    let mut tenants = Vec::with_capacity(n);
    for task in tasks {
        tenants.push(task.await?);
    }
    let all_at_once = all_at_once.elapsed();
    let held = Sample::now();
    println!("all {n} reserving at once: {:.1?}", all_at_once);

    let mut ok = true;
    let mut ports = HashSet::new();
    let mut outside = 0;
    let mut failed = Vec::new();
    for (tenant, ((_, held), block)) in tenants.iter().zip(&blocks).enumerate() {
        match held {
            Ok((_, port)) => {
                ports.insert(*port);
                outside += usize::from(!block.contains(&u32::from(*port)));
            }
            Err(error) => failed.push(format!("tenant {tenant} ({block:?}): {error:#}")),
        }
    }
    if !failed.is_empty() {
        ok = false;
        println!(
            "FAILED: {} tenants got no port, the first: {}",
            failed.len(),
            failed[0]
        );
    }
    if ports.len() != n - failed.len() || outside > 0 {
        ok = false;
        println!(
            "FAILED: {} distinct ports for {} reservations, {outside} outside their block",
            ports.len(),
            n - failed.len()
        );
    }

    // One tenant, warm, while every tenant holds its port; each call is
    // followed by its native twin (the same syscalls on the same port, made
    // directly), so that both see the same moment of the machine.
    let (session, _) = &mut tenants[0];
    let own = candidates(&blocks[0]);
    let mut warm = Vec::with_capacity(WARM_CALLS);
    let mut native = Vec::with_capacity(WARM_CALLS);
    for call in 0..2 * WARM_CALLS {
        let started = Instant::now();
        let reservation = session.reserve_port(Some(&own), true).await?;
        let elapsed = started.elapsed();
        let reservation = match reservation {
            Ok(reservation) => reservation,
            Err(error) => wasmtime::bail!("tenant 0's warm reserve-port: {error:?}"),
        };
        let port = match session.reservation_port(&reservation).await? {
            Ok(port) if blocks[0].contains(&u32::from(port)) => port,
            port => wasmtime::bail!(
                "tenant 0's warm reserve-port gave {port:?}, outside {:?}",
                blocks[0]
            ),
        };
        session.release(&reservation).await?.ok();
        session.drop_reservation(reservation).await?;
        let started = Instant::now();
        let twin = native::reserve(port);
        let native_elapsed = started.elapsed();
        drop(twin?);
        if call >= WARM_CALLS {
            warm.push(elapsed);
            native.push(native_elapsed);
        }
    }
    warm.sort();
    native.sort();
    println!(
        "warm reserve-port, tenant 0 with all {n} alive and holding: p50 {}, p99 {}, max {} \
         ({WARM_CALLS} calls); its native twin: p50 {}, p99 {}, max {}; component / native: \
         {:.2}x at p50, {:.2}x at p99",
        micros(percentile(&warm, 50)),
        micros(percentile(&warm, 99)),
        micros(warm[warm.len() - 1]),
        micros(percentile(&native, 50)),
        micros(percentile(&native, 99)),
        micros(native[native.len() - 1]),
        ratio(percentile(&warm, 50), percentile(&native, 50)),
        ratio(percentile(&warm, 99), percentile(&native, 99)),
    );
    print_histogram(&warm, &native);
    if n > 1 {
        let neighbour = candidates(&blocks[1]);
        let trespass = tenants[0]
            .0
            .reserve_port(Some(&neighbour), true)
            .await?
            .err();
        if trespass != Some(ErrorCode::AccessDenied) {
            ok = false;
            println!("FAILED: tenant 0 asked for tenant 1's block and got {trespass:?}");
        }
    }

    // Every reservation released, every session gone.
    for (mut session, held) in tenants {
        if let Ok((reservation, _)) = held {
            session.release(&reservation).await?.ok();
            session.drop_reservation(reservation).await?;
        }
    }
    let after = Sample::now();

    let per_session = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / n as f64;
    println!(
        "RSS: {} before, {} with the sessions idle ({:.1} KiB each), {} holding a port each ({:.1} KiB each)",
        mib(before.rss_kib),
        mib(idle.rss_kib),
        per_session(idle.rss_kib, before.rss_kib),
        mib(held.rss_kib),
        per_session(held.rss_kib, before.rss_kib),
    );
    println!(
        "memory maps: {} before (a pool maps 2 per async stack up front), {} with the sessions \
         ({:.2} each), {} after; vm.max_map_count {}",
        before.maps,
        idle.maps,
        per_session(idle.maps as u64, before.maps as u64),
        after.maps,
        max_map_count().map_or("unknown".into(), |count| count.to_string()),
    );
    println!(
        "descriptors: {} before, {} with the sessions idle, {} while held, {} after",
        before.descriptors, idle.descriptors, held.descriptors, after.descriptors
    );
    if after.descriptors != before.descriptors {
        ok = false;
        println!("FAILED: descriptors did not come back");
    }
    if ok {
        println!(
            "ok: {} distinct ports, each inside its tenant's block; {}descriptors back",
            ports.len(),
            if n > 1 {
                "a neighbour's block refused; "
            } else {
                ""
            },
        );
    }
    println!(
        "| {} | {} | {:.1} KiB | {:.1} | {} | {} / {} | {} / {} | {} / {} / {} |",
        thousands(n),
        micros(total_creation / n as u32),
        per_session(idle.rss_kib, before.rss_kib),
        per_session(idle.maps as u64, before.maps as u64),
        millis(all_at_once),
        micros(percentile(&warm, 50)),
        micros(percentile(&warm, 99)),
        micros(percentile(&native, 50)),
        micros(percentile(&native, 99)),
        thousands(before.descriptors),
        thousands(held.descriptors),
        thousands(after.descriptors),
    );
    Ok(ok)
}

/// Upper bounds (µs) of the histogram's buckets; the last bucket is open.
const BUCKETS: [u64; 14] = [
    10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1_000,
];

/// The warm calls and their native twins side by side, counted per bucket,
/// so that a tail shows where it is and whether native calls have it too.
fn print_histogram(component: &[Duration], native: &[Duration]) {
    let count = |samples: &[Duration], low: u64, high: Option<u64>| {
        samples
            .iter()
            .filter(|d| {
                let us = d.as_micros() as u64;
                us >= low && high.is_none_or(|high| us < high)
            })
            .count()
    };
    println!("histogram of the warm calls (µs): bucket, component, native");
    let mut low = 0;
    for high in BUCKETS.iter().copied().map(Some).chain([None]) {
        let (c, n) = (count(component, low, high), count(native, low, high));
        if c + n > 0 {
            let bucket = match high {
                Some(high) => format!("{low}–{high}"),
                None => format!("≥ {low}"),
            };
            println!(
                "  {bucket:>10} {c:>6} {n:>6}  {}",
                "#".repeat(c.div_ceil(20))
            );
        }
        low = high.unwrap_or(low);
    }
}

/// What the process holds at one moment.
struct Sample {
    rss_kib: u64,
    maps: usize,
    descriptors: usize,
}

impl Sample {
    fn now() -> Sample {
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux has /proc");
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        let maps = std::fs::read_to_string("/proc/self/maps")
            .expect("Linux has /proc/self/maps")
            .lines()
            .count();
        // The directory handle that counts them is the same one extra every time.
        let descriptors = std::fs::read_dir("/proc/self/fd")
            .expect("Linux has /proc/self/fd")
            .count();
        Sample {
            rss_kib,
            maps,
            descriptors,
        }
    }
}

/// Raises the soft open-file limit to `bound` (the host's worst case), the
/// hard limit too if need be and allowed; says what it did, and fails only
/// when the limit stays below `needed`, what this run really opens.
#[cfg(unix)]
fn raise_open_file_limit(bound: usize, needed: usize) -> wasmtime::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        wasmtime::bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let was = limit.rlim_cur;
    let bound = bound as libc::rlim_t;
    if was >= bound {
        println!("open-file limit: {was}, enough for the host's bound of {bound}");
        return Ok(());
    }
    let wanted = libc::rlimit {
        rlim_cur: bound,
        rlim_max: limit.rlim_max.max(bound),
    };
    // SAFETY: a valid rlimit; raising the hard limit needs CAP_SYS_RESOURCE
    // and is refused (EPERM) without it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        println!(
            "open-file limit: raised from {was} to {bound}, the host's bound (sessions × resources + its own)"
        );
        return Ok(());
    }
    let why = std::io::Error::last_os_error();
    let capped = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above; up to the hard limit needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } != 0 {
        wasmtime::bail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    println!(
        "open-file limit: cannot raise it to the host's bound of {bound} ({why}); \
         raised from {was} to the hard limit, {}",
        limit.rlim_max
    );
    if (limit.rlim_max as usize) < needed {
        wasmtime::bail!(
            "this run opens about {needed} descriptors and the hard open-file limit is {}: \
             raise it (ulimit -Hn) or run fewer tenants",
            limit.rlim_max
        );
    }
    Ok(())
}

/// Windows limits no process to a number of sockets (its handle table holds
/// about 16 million): nothing to raise.
#[cfg(not(unix))]
fn raise_open_file_limit(bound: usize, _needed: usize) -> wasmtime::Result<()> {
    println!("open-file limit: none on this OS, enough for the host's bound of {bound}");
    Ok(())
}

/// `n` disjoint blocks of [`BLOCK`] ports, every port free on 127.0.0.1 and,
/// where it exists, on ::1 when checked, none of them in the OS's ephemeral
/// range (where any outgoing connection could take one meanwhile).
fn free_blocks(n: usize) -> wasmtime::Result<Vec<Range<u32>>> {
    let (low, high) = ephemeral_range();
    let v6 = bindable(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)));
    let free = |port: u32| {
        let port = port as u16;
        bindable(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            && (!v6 || bindable(SocketAddr::from((Ipv6Addr::LOCALHOST, port))))
    };
    let mut blocks = Vec::with_capacity(n);
    for span in [1_024..low, high + 1..1 << 16] {
        let mut start = span.start;
        while blocks.len() < n && start + BLOCK <= span.end {
            match (start..start + BLOCK).find(|&port| !free(port)) {
                None => {
                    blocks.push(start..start + BLOCK);
                    start += BLOCK;
                }
                Some(taken) => start = taken + 1,
            }
        }
    }
    let ports = |span: Range<u32>| span.end.saturating_sub(span.start);
    println!(
        "blocks: {} of {BLOCK} ports, each port checked free, outside the ephemeral range {low}..={high} \
         ({} ports there to choose from)",
        blocks.len(),
        ports(1_024..low) + ports(high + 1..1 << 16)
    );
    if blocks.len() < n {
        wasmtime::bail!(
            "only {} free blocks of {BLOCK} ports outside the ephemeral range; {n} tenants need {n}",
            blocks.len()
        );
    }
    Ok(blocks)
}

/// Whether a bind without SO_REUSEADDR succeeds: nothing else holds the port.
fn bindable(addr: SocketAddr) -> bool {
    let Ok(socket) = Socket::new(Domain::for_address(addr), Type::STREAM, None) else {
        return false;
    };
    if addr.is_ipv6() && socket.set_only_v6(true).is_err() {
        return false;
    }
    socket.bind(&addr.into()).is_ok()
}

fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut bounds = range.split_whitespace().map(|bound| bound.parse().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn candidates(block: &Range<u32>) -> Candidates {
    Candidates::Range(PortRange {
        start: block.start,
        end: block.end,
        step: 1,
    })
}

/// The `p`th percentile of sorted `samples`.
fn percentile(samples: &[Duration], p: usize) -> Duration {
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
