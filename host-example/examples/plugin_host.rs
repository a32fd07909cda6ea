//! A plugin host in miniature: many tenants in one tokio process, each
//! confined to a port block of its own, one of them hostile.
//!
//! ```sh
//! cargo run --release -p port-host --example plugin_host
//! ```
//!
//! Every honest tenant reserves its whole block and then tries a neighbour's;
//! the hostile one (the test suite's escape guest) hoards sockets in one
//! session and blocks in `accept` in another. The program prints a summary
//! and exits 0 only when every honest tenant got distinct ports inside its own
//! block, every trespass was refused, and the hostile tenant was stopped by
//! its quota and its deadline without costing anyone else a descriptor.

use port_host::{
    AsyncSession, Candidates, ErrorCode, Limits, NetworkPolicy, PortBlock, PortHost, PortRange,
    Stderr, StoreBounds,
};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANTS: u16 = 16;
const BLOCK: u16 = 10;

#[tokio::main]
async fn main() -> wasmtime::Result<ExitCode> {
    // Bounds for every tenant: a small quota, a short deadline, and room for
    // all sessions at once (tenants plus the hostile one's two).
    let limits = Limits::default()
        .with_sessions(usize::from(TENANTS) + 2)
        .with_call_timeout(Duration::from_secs(1))
        .with_store(StoreBounds::default().with_resources(100));
    // One engine; the component compiled once; a session per tenant.
    let host = Arc::new(PortHost::embedded(limits)?);
    let hostile_wasm = std::fs::read(test_guests::ESCAPE_GUEST)?;
    let hostile = Arc::new(PortHost::from_bytes_on_engine(
        host.engine(),
        &hostile_wasm,
        limits,
    )?);
    let Some(base) = free_blocks(TENANTS * BLOCK) else {
        eprintln!(
            "error: no {} consecutive free ports to hand out",
            TENANTS * BLOCK
        );
        return Ok(ExitCode::FAILURE);
    };
    // Each host maps its component's memory image at its first session: a
    // descriptor of the host's, not of any tenant. Count from after those.
    for warm in [&host, &hostile] {
        drop(
            warm.async_session(NetworkPolicy::denied(), Stderr::Capture)
                .await?,
        );
    }
    let descriptors_before = open_descriptors();

    let honest: Vec<_> = (0..TENANTS)
        .map(|tenant| tokio::spawn(honest_tenant(host.clone(), base, tenant)))
        .collect();
    let hoarding = tokio::spawn(hostile_tenant(hostile.clone(), 2));
    let blocking = tokio::spawn(hostile_tenant(hostile.clone(), 1));

    let mut ports = HashSet::new();
    let (mut inside, mut refused) = (0, 0);
    for (tenant, task) in honest.into_iter().enumerate() {
        let outcome = task.await??;
        let own = block_of(base, tenant as u16);
        inside += outcome.ports.iter().filter(|p| own.contains(p)).count();
        ports.extend(outcome.ports);
        refused += usize::from(outcome.trespass == Some(ErrorCode::AccessDenied));
    }
    let (hoard_error, _) = hoarding.await?;
    let (block_error, blocked_for) = blocking.await?;
    let descriptors_after = open_descriptors();

    let expected = usize::from(TENANTS * BLOCK);
    let quota_held = hoard_error.contains("quota of 100 live");
    let deadline_held =
        block_error.contains("deadline") && blocked_for < Duration::from_millis(1_100);
    println!("{TENANTS} honest tenants and 1 hostile one on one engine");
    println!(
        "honest: {} distinct ports reserved of {expected}, {inside} inside their own block, \
         {refused}/{TENANTS} trespasses refused",
        ports.len()
    );
    println!("hostile, hoarding sockets: {hoard_error}");
    println!("hostile, blocked in accept for {blocked_for:.2?}: {block_error}");
    println!("host descriptors: {descriptors_before} before, {descriptors_after} after");
    let contained = quota_held && deadline_held && descriptors_after == descriptors_before;
    let fair = ports.len() == expected && inside == expected && refused == usize::from(TENANTS);
    Ok(if fair && contained {
        println!("ok: every tenant got its own ports, and the hostile one was contained");
        ExitCode::SUCCESS
    } else {
        println!("FAILED");
        ExitCode::FAILURE
    })
}

struct Outcome {
    ports: Vec<u16>,
    trespass: Option<ErrorCode>,
}

/// Reserves every port of its own block, then asks for its neighbour's.
async fn honest_tenant(host: Arc<PortHost>, base: u16, tenant: u16) -> wasmtime::Result<Outcome> {
    let own = block_of(base, tenant);
    let block = PortBlock::new(u32::from(own.start)..u32::from(own.end))?;
    let mut session = host
        .async_session(
            NetworkPolicy::loopback().confined_to(block),
            Stderr::Capture,
        )
        .await?;
    let mut ports = Vec::new();
    for _ in own.clone() {
        match session
            .reserve_port(Some(&candidates(own.clone())), true)
            .await?
        {
            Ok(reservation) => ports.extend(session.reservation_port(&reservation).await?),
            Err(error) => wasmtime::bail!("tenant {tenant}: {error:?}"),
        }
    }
    let neighbour = block_of(base, (tenant + 1) % TENANTS);
    let trespass = session
        .reserve_port(Some(&candidates(neighbour)), true)
        .await?
        .err();
    Ok(Outcome { ports, trespass })
}

/// Runs the escape guest's `is-free-port(behaviour)`: 2 hoards sockets, 1
/// blocks in `accept`. Returns the host's error and how long the call took.
async fn hostile_tenant(host: Arc<PortHost>, behaviour: u16) -> (String, Duration) {
    let started = Instant::now();
    let result = async {
        let mut session: AsyncSession = host
            .async_session(NetworkPolicy::loopback(), Stderr::Capture)
            .await?;
        session.is_free_port(behaviour).await
    }
    .await;
    let error = match result {
        Ok(answer) => format!("not stopped: answered {answer:?}"),
        Err(error) => error.to_string(),
    };
    (error, started.elapsed())
}

fn block_of(base: u16, tenant: u16) -> std::ops::Range<u16> {
    let first = base + tenant * BLOCK;
    first..first + BLOCK
}

fn candidates(ports: std::ops::Range<u16>) -> Candidates {
    Candidates::Range(PortRange {
        start: ports.start.into(),
        end: ports.end.into(),
        step: 1,
    })
}

/// The first `len` consecutive ports from 20000 up (below the usual
/// ephemeral range) that nothing on this machine holds right now.
fn free_blocks(len: u16) -> Option<u16> {
    let free = |port: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
    let mut base = 20_000;
    while base + len < 32_768 {
        match (base..base + len).find(|&port| !free(port)) {
            None => return Some(base),
            Some(taken) => base = taken + 1,
        }
    }
    None
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}
