//! Shared by the integration tests: one compiled component per test binary,
//! ports the OS vouches for, the kinds of socket that hold a port, and the
//! process's descriptors (what differs between OSes is in `os.rs`).
#![allow(dead_code)] // each test binary uses its own share of these helpers

pub mod child;
pub mod echo;
pub mod os;

use port_host::{Candidates, Limits, NetworkPolicy, PortHost, PortRange, Session, Stderr};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

/// One host for the binary, with room for every test's sessions at once.
pub fn host() -> &'static PortHost {
    static HOST: OnceLock<PortHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let limits = Limits::default().with_sessions(10_000);
        PortHost::embedded(limits).expect("the embedded component loads")
    })
}

pub fn session() -> Session {
    host()
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .expect("a session starts")
}

pub fn ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// Whether nothing holds `port` on 127.0.0.1 nor, where it exists, on ::1,
/// asked of the OS directly (a bind without SO_REUSEADDR, so any holder counts).
pub fn natively_free(port: u16) -> bool {
    let bindable = |addr: SocketAddr| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        if addr.is_ipv6() {
            socket.set_only_v6(true).unwrap();
        }
        socket.bind(&addr.into()).is_ok()
    };
    bindable((Ipv4Addr::LOCALHOST, port).into())
        && (!ipv6_loopback() || bindable((Ipv6Addr::LOCALHOST, port).into()))
}

/// `len` consecutive ports, all free on both loopbacks when checked.
///
/// They lie outside the OS's ephemeral range, so that no `bind(0)` or
/// outgoing `connect` in a parallel test can be handed one of them while a
/// test counts on them; no two calls in one process return overlapping
/// blocks; and the search starts at a place that depends on the process, so
/// that concurrent test processes seldom meet.
pub fn free_block(len: u16) -> u16 {
    const FLOOR: u32 = 10_000;
    const END: u32 = 1 << 16;
    static HANDED_OUT: Mutex<Vec<Range<u32>>> = Mutex::new(Vec::new());
    let (ephemeral_low, ephemeral_high) = ephemeral_range();
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let usable = |port: u32, handed_out: &[Range<u32>]| {
        !(ephemeral_low..=ephemeral_high).contains(&port)
            && !handed_out.iter().any(|block| block.contains(&port))
            && natively_free(port as u16)
    };
    let len = u32::from(len);
    let mut start = FLOOR + std::process::id() % (END - FLOOR);
    // Each step moves past at least one port; two laps cover every start.
    for _ in 0..2 * (END - FLOOR) {
        if start + len > END {
            start = FLOOR;
        }
        match (start..start + len).find(|&port| !usable(port, &handed_out)) {
            None => {
                handed_out.push(start..start + len);
                return start as u16;
            }
            Some(taken) => start = taken + 1,
        }
    }
    panic!("no block of {len} free ports outside the ephemeral range");
}

/// The ports the OS hands out for `bind(0)` and outgoing connections.
/// The ports the OS hands out for `bind(0)`.
pub fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    let (low, high) = ephemeral_range();
    let port = |n: u32| u16::try_from(n).expect("a port");
    port(low)..=port(high)
}

/// A host of the escape guest (`tests/escape-guest`), whose `is-free-port`
/// is hostile: `(1)` blocks in `accept`, `(2)` hoards sockets, `(3)` spins,
/// `(4)` opens sockets then traps; calls end after `timeout`.
pub fn hostile_host(timeout: std::time::Duration) -> PortHost {
    let wasm = std::fs::read(test_guests::ESCAPE_GUEST).unwrap();
    let limits = Limits::default().with_call_timeout(timeout);
    PortHost::from_bytes(&wasm, limits).unwrap()
}

fn ephemeral_range() -> (u32, u32) {
    os::ephemeral_range()
}

pub fn free_port() -> u16 {
    free_block(1)
}

/// The candidates `start..start + len`, as a range.
pub fn block(start: u16, len: u16) -> Candidates {
    Candidates::Range(PortRange {
        start: start.into(),
        end: u32::from(start) + u32::from(len),
        step: 1,
    })
}

/// The kinds of socket that hold a port; each must make the port read busy.
pub enum Holder {
    Ipv4Loopback,
    Ipv4Wildcard,
    Ipv6Wildcard,
    Ipv6LoopbackOnly,
    BoundNotListening,
}

pub fn hold(holder: Holder, port: u16) -> Socket {
    let (addr, v6_only, listen): (SocketAddr, bool, bool) = match holder {
        Holder::Ipv4Loopback => ((Ipv4Addr::LOCALHOST, port).into(), false, true),
        Holder::Ipv4Wildcard => ((Ipv4Addr::UNSPECIFIED, port).into(), false, true),
        Holder::Ipv6Wildcard => ((Ipv6Addr::UNSPECIFIED, port).into(), false, true),
        Holder::Ipv6LoopbackOnly => ((Ipv6Addr::LOCALHOST, port).into(), true, true),
        Holder::BoundNotListening => ((Ipv4Addr::LOCALHOST, port).into(), false, false),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only).unwrap();
    }
    // Servers set SO_REUSEADDR; the plain bound socket is the one that does not.
    socket.set_reuse_address(listen).unwrap();
    socket.bind(&addr.into()).unwrap();
    if listen {
        socket.listen(128).unwrap();
    }
    socket
}

/// A listener on 127.0.0.1:`port`, as most test servers are.
pub fn listen(port: u16) -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap()
}

/// A multi-thread tokio runtime, as most embedders run.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The descriptors this process has open now. Only where the OS counts
/// them ([`os::open_descriptors`]): a test that needs it asks
/// [`counts_descriptors`] first.
pub fn open_descriptors() -> usize {
    os::open_descriptors().expect("this OS counts a process's descriptors")
}

/// Whether this OS counts a process's descriptors; where it does not, says
/// that `test` was skipped.
pub fn counts_descriptors(test: &str) -> bool {
    let counts = os::open_descriptors().is_some();
    if !counts {
        skipped(&format!(
            "{test}: {} does not count a process's descriptors (/proc/self/fd, /dev/fd)",
            std::env::consts::OS
        ));
    }
    counts
}

/// Raises this process's soft open-file limit to at least `needed`, within
/// the hard limit; panics (naming both) when the hard limit is lower.
pub fn allow_open_files(needed: u64) {
    let (soft, hard) = open_file_limits();
    assert!(
        hard >= needed,
        "this test needs {needed} open files; the hard limit is {hard}"
    );
    if soft < needed {
        os::raise_open_files(needed);
    }
}

/// This process's open-file limits: (soft, hard); unbounded where the OS
/// has no such limit (Windows).
pub fn open_file_limits() -> (u64, u64) {
    os::open_file_limits()
}

/// Says that (part of) a test could not run on this machine, in plain
/// `cargo test` output and in a file that `.ci/run` counts and prints. The
/// harness captures `println!` and hides a passing test's output; a write to
/// the process's stderr handle is not captured, so the line shows.
pub fn skipped(what: &str) {
    use std::io::Write;
    // One write, so that lines of tests running at once do not interleave.
    let _ = std::io::stderr().write_all(format!("skipped: {what}\n").as_bytes());
    let log = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped.txt");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the target's tmp folder is writable");
    writeln!(file, "skipped: {what}").expect("the target's tmp folder is writable");
}

/// `command` with its soft open-file limit set to `files` in the child
/// (as it is where the OS has no such limit).
pub fn with_open_file_limit(
    command: &mut std::process::Command,
    files: u64,
) -> &mut std::process::Command {
    os::with_open_file_limit(command, files)
}
