//! Reservations across processes: eight `port-host reserve` processes
//! started at once over one range each get a port of their own, hold it
//! against everyone, and give it back however they end, SIGKILL included.

use crate::common::{free_block, natively_free};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const PROCESSES: u16 = 8;
/// Longer than any healthy start or exit; past it the test fails, not hangs.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `reserve` process, killed when dropped whatever the test did.
struct Reserving {
    child: Child,
    port: u16,
}

impl Drop for Reserving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < PATIENCE, "port-host did not end");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn eight_processes_reserve_distinct_ports_and_each_frees_its_own_on_any_ending() {
    // Room to spare: a port someone else takes meanwhile is skipped, not fatal.
    let len = PROCESSES + 4;
    let start = free_block(len);
    let range = format!("{start}..{}", start + len);

    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_port-host"))
                .args(["reserve", &range, "--hold-for", "30"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("port-host starts")
        })
        .collect();
    let mut remaining: Vec<Reserving> = children
        .into_iter()
        .map(|mut child| {
            let stdout = child.stdout.take().unwrap();
            let (sender, receiver) = mpsc::channel();
            thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = sender.send(line);
            });
            let line = receiver
                .recv_timeout(PATIENCE)
                .expect("port-host printed its port in time");
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
    for i in 0..PROCESSES {
        let mut process = remaining.remove(0);
        let signal = if i % 2 == 0 {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        let pid = process.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = wait_for_exit(&mut process.child);
        assert_eq!(status.signal(), Some(signal), "{status}");
        assert!(
            natively_free(process.port),
            "{} still held after its process ended by signal {signal}",
            process.port
        );
        for other in &remaining {
            assert!(!natively_free(other.port), "{} freed too early", other.port);
        }
    }
}
