//! Reservations across processes: eight `port-host reserve` processes
//! started at once over one range each get a port of their own, hold it
//! against everyone, and give it back however they end, SIGKILL included.

use crate::common::child::Child;
use crate::common::os::{CAN_TERMINATE, Ending, ended_by};
use crate::common::{free_block, natively_free, skipped};

const PROCESSES: u16 = 8;

/// A `reserve` process and the port it printed; killed when dropped.
struct Reserving {
    child: Child,
    port: u16,
}

#[test]
fn eight_processes_reserve_distinct_ports_and_each_frees_its_own_on_any_ending() {
    // Room to spare: a port someone else takes meanwhile is skipped, not fatal.
    let len = PROCESSES + 4;
    let start = free_block(len);
    let range = format!("{start}..{}", start + len);

    // All started before any is read, so that they race for the range.
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| Child::port_host(&["reserve", &range, "--hold-for", "30"]))
        .collect();
    let mut remaining: Vec<Reserving> = children
        .into_iter()
        .map(|mut child| {
            let line = child.line();
            let port = line
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a port: {line:?}"));
            Reserving { child, port }
        })
        .collect();

    let mut ports: Vec<u16> = remaining.iter().map(|r| r.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), usize::from(PROCESSES), "shared: {ports:?}");
    for &port in &ports {
        assert!(
            (start..start + len).contains(&port),
            "{port} outside {range}"
        );
        assert!(!natively_free(port), "{port} is not held");
    }

    // Half end as a service manager stops them, half as the OOM killer
    // would; each one's port is free once it is gone, and only its own.
    if !CAN_TERMINATE {
        skipped(
            "eight_processes_reserve_distinct_ports: no SIGTERM on this OS, so all eight \
             are killed (TerminateProcess) and none is asked to end",
        );
    }
    for i in 0..PROCESSES {
        let mut process = remaining.remove(0);
        let how = if i % 2 == 0 {
            Ending::Terminate
        } else {
            Ending::Kill
        };
        process.child.end(how);
        let status = process.child.wait();
        assert!(ended_by(status, how), "{status}, not ended by {how:?}");
        assert!(
            natively_free(process.port),
            "{} still held after its process ended by {how:?}",
            process.port
        );
        for other in &remaining {
            assert!(!natively_free(other.port), "{} freed too early", other.port);
        }
    }
}
