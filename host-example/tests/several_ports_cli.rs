//! `port-host get-free-port --count N` and `reserve --count N`: several
//! ports from the command line, and two processes reserving from one range.
//!
//! A binary of its own because it starts processes: a child holds a copy of
//! every descriptor the parent has open until it execs, so a test in the same
//! process that closes a socket and binds its port again at that moment
//! would find the port busy.

mod common;

use common::{free_block, natively_free};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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

/// A `port-host reserve` that holds its ports until stdin closes; killed
/// when dropped, whatever the test did.
struct Holding {
    child: Child,
    lines: Vec<String>,
}

impl Holding {
    fn start(args: &[&str], lines: usize) -> Holding {
        let mut child = Command::new(env!("CARGO_BIN_EXE_port-host"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("port-host starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let read: Vec<String> = BufReader::new(stdout)
                .lines()
                .take(lines)
                .map_while(Result::ok)
                .collect();
            let _ = sender.send(read);
        });
        let lines = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("port-host printed its ports in time");
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
    /// waits for a clean exit.
    fn finish(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"more\n").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
