//! `port-host get-free-port --count N` and `reserve --count N`: several
//! ports from the command line, thousands of them from the OS, and two
//! processes reserving from one range.
//!
//! A binary of its own because it starts processes: a child holds a copy of
//! every descriptor the parent has open until it execs, so a test in the same
//! process that closes a socket and binds its port again at that moment
//! would find the port busy.

mod common;

use common::child::Child;
use common::{
    ephemeral_ports, free_block, natively_free, open_file_limits, skipped, with_open_file_limit,
};
use std::collections::HashSet;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Output};
use std::thread;
use std::time::Instant;

fn port_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_port-host"))
        .args(args)
        .output()
        .expect("port-host runs")
}

#[test]
fn cli_get_free_port_count_prints_one_port_per_line_or_a_json_list() {
    let start = free_block(3);
    let range = format!("{start}..{}", start + 3);
    let plain = port_host(&["get-free-port", &range, "--count", "3"]);
    assert_eq!(plain.status.code(), Some(0));
    let expected: String = (start..start + 3).map(|p| format!("{p}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&plain.stdout), expected);

    let json = port_host(&["get-free-port", &range, "--count", "2", "--json"]);
    assert_eq!(json.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&json.stdout),
        format!("{{\"ports\":[{start},{}]}}\n", start + 1)
    );

    let without = port_host(&["get-free-port", &range, "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&without.stdout),
        format!("{{\"port\":{start}}}\n")
    );
}

#[test]
fn cli_count_errors_are_one_line_and_exit_2() {
    let start = free_block(2);
    let range = format!("{start}..{}", start + 2);
    for (args, says) in [
        (
            vec!["get-free-port", &range, "--count", "3"],
            "only 2 are free",
        ),
        (vec!["get-free-port", &range, "--count", "0"], "count 0"),
        (vec!["reserve", &range, "--count", "0"], "count 0"),
        (vec!["get-free-port", &range, "--count", "many"], "'many'"),
        (vec!["reserve", &range, "--count", "-1"], "'-1'"),
    ] {
        let output = port_host(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
}

/// A `port-host reserve` that holds its ports until stdin closes, and the
/// lines it printed; killed when dropped, whatever the test did.
struct Holding {
    child: Child,
    lines: Vec<String>,
}

impl Holding {
    fn start(args: &[&str], lines: usize) -> Holding {
        let mut child = Child::port_host(args);
        let lines = child.lines(lines);
        Holding { child, lines }
    }

    fn ports(&self) -> Vec<u16> {
        self.lines
            .iter()
            .map(|line| {
                line.parse()
                    .unwrap_or_else(|_| panic!("not a port: {line:?}"))
            })
            .collect()
    }

    /// Closes stdin (after a line, which must not end the hold early) and
    /// waits, within the patience, for a clean exit.
    fn finish(mut self) {
        let mut stdin = self.child.stdin();
        stdin.write_all(b"more\n").unwrap();
        drop(stdin);
        let (status, stderr) = self.child.finish();
        assert!(status.success(), "{status}: {stderr}");
    }
}

#[test]
fn two_processes_reserving_500_each_over_one_range_never_overlap() {
    let start = free_block(1100);
    let range = format!("{start}..{}", start + 1100);
    let args = ["reserve", range.as_str(), "--count", "500"];
    let (first, second) = thread::scope(|scope| {
        let first = scope.spawn(|| Holding::start(&args, 500));
        let second = scope.spawn(|| Holding::start(&args, 500));
        (first.join().unwrap(), second.join().unwrap())
    });
    let mut every = HashSet::new();
    for port in first.ports().into_iter().chain(second.ports()) {
        assert!(
            (start..start + 1100).contains(&port),
            "{port} outside the range"
        );
        assert!(every.insert(port), "{port} reserved by both processes");
        assert!(!natively_free(port), "{port} is reserved yet bindable");
    }
    assert_eq!(every.len(), 1000);
    first.finish();
    second.finish();
    assert!(every.into_iter().all(natively_free));
}

#[test]
fn cli_reserve_count_prints_json_and_holds_every_port_until_stdin_closes() {
    let start = free_block(3);
    let range = format!("{start}..{}", start + 3);
    let holding = Holding::start(&["reserve", &range, "--count", "3", "--json"], 1);
    assert_eq!(
        holding.lines,
        [format!(
            "{{\"ports\":[{start},{},{}]}}",
            start + 1,
            start + 2
        )]
    );
    assert!((start..start + 3).all(|port| !natively_free(port)));
    holding.finish();
    assert!((start..start + 3).all(natively_free));
}

/// The ports a successful `get-free-port --count` printed, checked distinct.
fn printed_ports(output: &Output, what: &str) -> Vec<u16> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{what}: {stderr}");
    let ports: Vec<u16> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            line.parse()
                .unwrap_or_else(|_| panic!("not a port: {line:?}"))
        })
        .collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "{what} printed a port twice");
    ports
}

#[test]
fn cli_get_free_port_count_1000_and_5000_from_the_os_are_distinct() {
    for count in [1000u32, 5000] {
        let what = format!("port-host get-free-port --count {count}");
        // A socket per port the OS picks, held until the call returns.
        let files = u64::from(count) + 256;
        if open_file_limits().1 < files {
            skipped(&format!("{what}: needs {files} open files"));
            continue;
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_port-host"));
        command.args(["get-free-port", "--count", &count.to_string()]);
        let started = Instant::now();
        let output = with_open_file_limit(&mut command, files)
            .output()
            .expect("port-host runs");
        println!("{what} took {:?}", started.elapsed());
        let ports = printed_ports(&output, &what);
        assert_eq!(ports.len(), count as usize);
        let ephemeral = ephemeral_ports();
        assert!(ports.iter().all(|port| ephemeral.contains(port)));
    }
}

#[test]
fn cli_too_few_free_candidates_with_no_strict_are_topped_up_to_1000_by_the_os() {
    let start = free_block(5);
    let _held = TcpListener::bind((Ipv4Addr::LOCALHOST, start + 1)).unwrap();
    let range = format!("{start}..{}", start + 5);
    let args = ["get-free-port", &range, "--count", "1000", "--no-strict"];
    let ports = printed_ports(&port_host(&args), "get-free-port --count 1000 --no-strict");
    assert_eq!(ports.len(), 1000);
    assert_eq!(ports[..4], [start, start + 2, start + 3, start + 4]);
    let ephemeral = ephemeral_ports();
    assert!(ports[4..].iter().all(|port| ephemeral.contains(port)));
}

/// Sets up a network namespace of its own whose ephemeral range is the 100
/// ports 40000..=40099, then runs the command given after it.
const NETWORK_OF_100_PORTS: &str = "ip link set lo up && \
    echo '40000 40099' > /proc/sys/net/ipv4/ip_local_port_range && exec \"$@\"";

fn in_a_network_of_100_ports(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new("unshare")
        .args(["--net", "sh", "-c", NETWORK_OF_100_PORTS, "sh", program])
        .args(args)
        .output()
}

#[test]
fn cli_count_beyond_what_the_os_has_says_how_many_it_found() {
    // It takes CAP_SYS_ADMIN, `unshare` and `ip`; not every machine has them.
    match in_a_network_of_100_ports("true", &[]) {
        Ok(output) if output.status.success() => {}
        failed => {
            let why = match failed {
                Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                Err(error) => error.to_string(),
            };
            return skipped(&format!(
                "get-free-port --count in a network namespace of 100 ports: {why}"
            ));
        }
    }
    let port_host = env!("CARGO_BIN_EXE_port-host");

    let all = in_a_network_of_100_ports(
        port_host,
        &["get-free-port", "--count", "100", "--no-strict"],
    )
    .unwrap();
    let mut ports = printed_ports(&all, "--count 100 of 100");
    ports.sort_unstable();
    assert_eq!(ports, (40_000..40_100).collect::<Vec<_>>());

    let more = in_a_network_of_100_ports(
        port_host,
        &["get-free-port", "--count", "101", "--no-strict"],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&more.stderr),
        "error: No 101 free ports can be allocated: only 100 are free, \
         picked by the OS before it ran out of ports\n"
    );
    assert_eq!(more.status.code(), Some(2));
}
