//! `port-host reserve` and `probe-port`: long-running commands
//! and the proof across processes that a reservation cannot be handed out
//! twice.

use crate::common::child::{Child, PATIENCE};
use crate::common::os::reads_stdin;
use crate::common::{block, free_block, natively_free};
use port_host::{NetworkPolicy, Stderr};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

fn port_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_port-host"))
        .args(args)
        .output()
        .expect("port-host runs")
}

/// The first line `child` printed, as a port.
fn port_of(child: &mut Child) -> u16 {
    let line = child.line();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a port: {line:?}"))
}

fn range_arg(start: u16, len: u16) -> String {
    format!("{start}..{}", start + len)
}

#[test]
fn reserve_holds_the_port_until_stdin_closes() {
    let start = free_block(3);
    let mut reserving = Child::port_host(&["reserve", &range_arg(start, 3)]);
    let port = port_of(&mut reserving);
    assert_eq!(port, start);
    assert!(!natively_free(port));
    // The process waits on its stdin, holding the port: it does not just
    // print and go. Polled, not slept: some thread of it sits in read(0).
    let waiting = Instant::now();
    while let Some(false) = reads_stdin(reserving.id()) {
        assert!(
            waiting.elapsed() < PATIENCE,
            "port-host reserve never waited on its stdin"
        );
        thread::sleep(Duration::from_millis(5));
    }
    if reads_stdin(reserving.id()).is_none() {
        crate::common::skipped(
            "reserve_holds_the_port_until_stdin_closes: this OS does not show that \
             port-host waits in read(0) (Linux's /proc/PID/task/*/syscall); the rest runs",
        );
    }
    assert!(!natively_free(port));

    drop(reserving.stdin());
    let (status, stderr) = reserving.finish();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
    assert!(natively_free(port));
}

#[test]
fn reserve_hold_for_releases_after_the_time_even_with_stdin_open() {
    let start = free_block(1);
    let mut reserving = Child::port_host(&["reserve", &range_arg(start, 1), "--hold-for", "3"]);
    let port = port_of(&mut reserving);
    assert!(!natively_free(port));
    let (status, stderr) = reserving.finish();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
    assert!(natively_free(port));
}

#[test]
fn another_process_never_gets_a_reserved_port() {
    let start = free_block(6);
    let session = |_| {
        crate::common::host()
            .session(NetworkPolicy::loopback(), Stderr::Capture)
            .unwrap()
    };
    let mut holder = session(());
    let ports = block(start, 6);
    let mut held = Vec::new();
    for expected in start..start + 5 {
        let reservation = holder.reserve_port(Some(&ports), true).unwrap().unwrap();
        assert_eq!(holder.reservation_port(&reservation).unwrap(), Ok(expected));
        held.push(reservation);
    }

    let range = range_arg(start, 6);
    let output = port_host(&["get-free-port", &range]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", start + 5)
    );
    let output = port_host(&["is-free-port", &start.to_string()]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "false\n");

    held.push(holder.reserve_port(Some(&ports), true).unwrap().unwrap());
    for command in ["get-free-port", "reserve"] {
        let output = port_host(&[command, &range]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("No free port can be allocated within range("),
            "{stderr}"
        );
    }
}

#[test]
fn probe_port_prints_both_families() {
    let port = free_block(1);
    let output = port_host(&["probe-port", &port.to_string(), "--json"]);
    let v6 = if crate::common::ipv6_loopback() {
        "free"
    } else {
        "unsupported"
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{{\"port\":{port},\"ipv4\":\"free\",\"ipv6\":\"{v6}\"}}\n")
    );
    let output = port_host(&["probe-port", &port.to_string(), "--deny-network"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ipv4 denied, ipv6 denied\n"
    );
}

/// The portpicker-rs failure: on a host without IPv6 every port read busy.
/// Here, in a network namespace whose loopback has no ::1, the IPv6 side is
/// `unsupported` and the port still reads free and is still reserved. The
/// namespace is new and empty, so nothing else can hold port 5000 in it.
#[test]
fn a_host_without_ipv6_loopback_sees_unsupported_and_free() {
    // A user and network namespace of our own; where the system forbids
    // unprivileged namespaces, there is nothing here to run the check in.
    let unshare = |script: &str, args: &[&str]| {
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--net", "sh", "-c", script])
            .args(args)
            .output()
    };
    match unshare("true", &[]) {
        Ok(output) if output.status.success() => {}
        other => {
            crate::common::skipped(&format!(
                "a_host_without_ipv6_loopback_sees_unsupported_and_free: no unprivileged \
                 network namespace here ({other:?})"
            ));
            return;
        }
    }
    let script = "ip link set lo up && echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && \
                  \"$0\" probe-port 5000 && \"$0\" is-free-port 5000 && \
                  \"$0\" get-free-port 5000..5010 && \"$0\" reserve 5000..5010 --hold-for 0";
    let output = unshare(script, &[env!("CARGO_BIN_EXE_port-host")]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ipv4 free, ipv6 unsupported\ntrue\n5000\n5000\n",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
