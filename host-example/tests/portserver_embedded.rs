//! `port_host::portserver::serve` inside an embedder's process: when it
//! returns, the process is as it was, its signals' dispositions and its
//! descriptors included. A binary of its own, because it sends SIGTERM to
//! the whole process.
#![cfg(target_os = "linux")]

mod common;

use common::free_block;
use port_host::portserver::{self, Address, Config, client};
use std::time::{Duration, Instant};

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1];

fn disposition(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a query only; `old` is written by the kernel.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

#[test]
fn a_returned_serve_leaves_the_signal_dispositions_and_descriptors_as_they_were() {
    // A process started in the background by a shell without job control
    // inherits SIGINT ignored; this binary is the test's alone, so it starts
    // from the defaults whatever it inherited.
    for signal in SIGNALS {
        // SAFETY: sets a default disposition; no handler runs.
        assert_ne!(
            unsafe { libc::signal(signal, libc::SIG_DFL) },
            libc::SIG_ERR
        );
    }
    let before: Vec<_> = SIGNALS.into_iter().map(disposition).collect();
    assert!(before.iter().all(|&d| d == libc::SIG_DFL), "{before:?}");
    let descriptors = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let mut counts = Vec::new();
    for round in 0..3 {
        let address = format!("@port-host-embedded-{}-{round}", std::process::id());
        let start = free_block(2);
        let state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("embedded-{}-{round}.state", std::process::id()));
        let config = Config::new(
            &address,
            &format!("{start}-{}", start + 1),
            Some(state.clone()),
            false,
            Duration::from_secs(1),
        )
        .unwrap();
        let server = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(portserver::serve(config))
        });
        // Answered means listening, and the handlers come before the socket.
        let server_address = Address::parse(&address).unwrap();
        let asked = Instant::now();
        while client::pick_unused_port(&server_address, std::process::id()).is_err() {
            assert!(
                asked.elapsed() < common::child::PATIENCE,
                "the server never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: kill has no memory effects; the server's handler takes it.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
        assert_eq!(server.join().unwrap(), Ok(()));
        let after: Vec<_> = SIGNALS.into_iter().map(disposition).collect();
        assert_eq!(after, before, "round {round}");
        let _ = std::fs::remove_file(state);
        counts.push(descriptors());
    }
    // The first round makes what a process keeps (the signals' socket
    // pair among it); later rounds add nothing.
    assert!(
        counts[2] <= counts[1],
        "descriptors after each round: {counts:?}"
    );
}
