//! `port-host portserver` against portpicker's `portserver.py`, side by
//! side in one run, with one native client harness: 64 client processes,
//! each making portpicker's request (its pid and a newline) one after
//! another and timing each from connect to the reply's end.
//!
//! ```sh
//! cargo bench -p port-host --bench portserver            # the full run
//! cargo bench -p port-host --bench portserver -- --quick  # a smoke run
//! ```
//!
//! Clients run in generations: each generation's 64 processes hold their
//! ports until they exit, and the next generation's requests reclaim them,
//! as a test farm's do. A generation asks for fewer ports than the pool
//! has, so no request is refused for want of ports. Needs python3 and PyPI
//! (portpicker 1.6.0 and psutil go into a venv under the target folder).

fn main() {
    #[cfg(target_os = "linux")]
    bench::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("skipped: the port server is Linux-only, and so is its benchmark");
}

// The port server is Linux-only (/proc, SO_PEERCRED), and so is this.
#[cfg(target_os = "linux")]
mod bench {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const CLIENTS: usize = 64;
    /// The pool both servers manage (portserver.py's default size).
    const POOL: u32 = 10_000;

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) == Some("--client") {
            return client(&args[2], args[3].parse().unwrap());
        }
        let quick = args.iter().any(|arg| arg == "--quick");
        // Each client's requests per generation, and generations per server.
        let (per_client, generations) = if quick { (10, 1) } else { (100, 3) };
        let pool_start = pool_start();
        let pool = format!("{}-{}", pool_start, pool_start + POOL - 1);
        let python = venv();
        let shm = PathBuf::from(format!(
            "/dev/shm/port-host-bench-{}.state",
            std::process::id()
        ));
        let disk = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bench-{}.state", std::process::id()));

        println!(
            "{CLIENTS} client processes, {per_client} requests each per generation, {generations} generation(s); pool {pool}"
        );
        println!(
            "{:<44} {:>9} {:>9} {:>8} {:>8} {:>7}",
            "server", "requests", "req/s", "p50 ms", "p99 ms", "errors"
        );
        let servers: Vec<(String, Vec<String>)> = vec![
            (
                "portserver.py (portpicker 1.6.0)".into(),
                vec![
                    python.join("bin/python").display().to_string(),
                    python.join("bin/portserver.py").display().to_string(),
                ],
            ),
            (
                "port-host portserver (state on tmpfs)".into(),
                port_host_args(&shm),
            ),
            (
                "port-host portserver (state on disk, ext4)".into(),
                port_host_args(&disk),
            ),
        ];
        for (name, command) in servers {
            let address = format!("@port-host-bench-{}-{}", std::process::id(), name.len());
            let mut server = Command::new(&command[0])
                .args(&command[1..])
                .args([
                    "--portserver_address",
                    &address,
                    "--portserver_static_pool",
                    &pool,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            wait_until_served(&address);
            let result = measure(&address, per_client, generations);
            let _ = server.kill();
            let _ = server.wait();
            println!(
                "{:<44} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>7}",
                name,
                result.requests,
                result.per_second,
                result.p50_ms,
                result.p99_ms,
                result.errors
            );
            // portserver.py's errors are its own; ours must answer everything.
            assert!(
                !name.starts_with("port-host") || result.errors == 0,
                "{name} left {} requests unanswered",
                result.errors
            );
        }
        let _ = std::fs::remove_file(shm);
        // What one request's freeness check costs, alone, on one thread: the
        // component's four wildcard binds through wasmtime-wasi, and the same
        // four binds made natively.
        let ports: Vec<u16> = (pool_start..pool_start + if quick { 500 } else { 5000 })
            .map(|port| port as u16)
            .collect();
        let (component, native) = (component_checks(&ports), native_checks(&ports));
        println!("one freeness check (TCP+UDP on 0.0.0.0 and [::]), sequential, one thread:");
        println!("  in the component (is-free-on-wildcard): {component:>8.0} checks/s");
        println!("  natively (std sockets):                 {native:>8.0} checks/s");
        let _ = std::fs::remove_file(disk);
    }

    fn port_host_args(state: &Path) -> Vec<String> {
        let _ = std::fs::remove_file(state);
        vec![
            env!("CARGO_BIN_EXE_port-host").into(),
            "portserver".into(),
            "--state-file".into(),
            state.display().to_string(),
        ]
    }

    /// `is-free-on-wildcard` for each port, one session reused, as the
    /// server checks.
    fn component_checks(ports: &[u16]) -> f64 {
        use port_host::{NetworkPolicy, PortBlock, PortUtilsPre, Stderr, StoreBounds};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let engine = port_host::engine(None).unwrap();
            let component =
                wasmtime::component::Component::new(&engine, port_host::COMPONENT).unwrap();
            let linker = port_host::async_linker(&engine).unwrap();
            let pre = PortUtilsPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
            let span = u32::from(ports[0])..u32::from(ports[ports.len() - 1]) + 1;
            let policy = NetworkPolicy::wildcard_binds(PortBlock::new(span).unwrap());
            let bounds = StoreBounds::default();
            let (mut store, _) =
                port_host::sandboxed_store(&engine, policy, Stderr::Capture, &bounds);
            let utils = pre.instantiate_async(&mut store).await.unwrap();
            let port_api = utils.hbutils_network_port();
            let started = Instant::now();
            for &port in ports {
                let answer = port_api.call_is_free_on_wildcard(&mut store, port).await;
                answer.unwrap().unwrap();
            }
            ports.len() as f64 / started.elapsed().as_secs_f64()
        })
    }

    /// The same four binds with std's sockets (SO_REUSEADDR on the TCP ones,
    /// as std and wasmtime set it).
    fn native_checks(ports: &[u16]) -> f64 {
        use std::net::{Ipv6Addr, TcpListener, UdpSocket};
        let started = Instant::now();
        for &port in ports {
            let tcp6 = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port));
            let tcp4 = TcpListener::bind(("0.0.0.0", port));
            let udp6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port));
            let udp4 = UdpSocket::bind(("0.0.0.0", port));
            let _ = (tcp6, tcp4, udp6, udp4);
        }
        ports.len() as f64 / started.elapsed().as_secs_f64()
    }

    struct Measured {
        requests: usize,
        per_second: f64,
        p50_ms: f64,
        p99_ms: f64,
        errors: usize,
    }

    /// Runs the generations against `address`: requests per second over the
    /// time requests were in flight, and the latency percentiles of all.
    fn measure(address: &str, per_client: usize, generations: usize) -> Measured {
        let mut latencies = Vec::new();
        let (mut busy, mut errors) = (Duration::ZERO, 0);
        for _ in 0..generations {
            let clients: Vec<Child> = (0..CLIENTS)
                .map(|_| {
                    Command::new(std::env::current_exe().unwrap())
                        .args(["--client", address, &per_client.to_string()])
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let (mut first, mut last) = (u128::MAX, 0);
            for mut child in clients {
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                child.wait().unwrap();
                let mut words = line.split_whitespace().map(|w| w.parse::<u128>().unwrap());
                first = first.min(words.next().unwrap());
                last = last.max(words.next().unwrap());
                errors += words.next().unwrap() as usize;
                latencies.extend(words);
            }
            busy += Duration::from_nanos((last - first) as u64);
        }
        latencies.sort_unstable();
        let percentile = |p: f64| {
            let index =
                ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[index] as f64 / 1e6
        };
        Measured {
            requests: latencies.len() + errors,
            per_second: (latencies.len() + errors) as f64 / busy.as_secs_f64(),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            errors,
        }
    }

    /// A client process: `count` requests in a row for itself; prints when its
    /// requests started and ended (CLOCK_MONOTONIC, shared by all processes),
    /// its errors and each request's latency, in nanoseconds.
    fn client(address: &str, count: usize) {
        let name = address.strip_prefix('@').unwrap().as_bytes();
        let server = SocketAddr::from_abstract_name(name).unwrap();
        let request = format!("{}\n", std::process::id());
        let mut latencies = Vec::with_capacity(count);
        let mut errors = 0;
        let started = monotonic_ns();
        for _ in 0..count {
            let begun = Instant::now();
            let mut reply = Vec::with_capacity(8);
            let answered = UnixStream::connect_addr(&server).and_then(|mut stream| {
                stream.write_all(request.as_bytes())?;
                stream.read_to_end(&mut reply)
            });
            match answered {
                Ok(_) if reply.len() > 1 && reply.ends_with(b"\n") => {
                    latencies.push(begun.elapsed().as_nanos())
                }
                _ => errors += 1,
            }
        }
        let ended = monotonic_ns();
        let mut line = format!("{started} {ended} {errors}");
        for latency in latencies {
            line.push_str(&format!(" {latency}"));
        }
        println!("{line}");
    }

    fn monotonic_ns() -> u128 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only the struct passed.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128
    }

    fn wait_until_served(address: &str) {
        let name = address.strip_prefix('@').unwrap().as_bytes();
        let server = SocketAddr::from_abstract_name(name).unwrap();
        for _ in 0..3000 {
            if UnixStream::connect_addr(&server).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{address} was not served within 30 s");
    }

    /// The first of POOL consecutive ports outside the ephemeral range that no
    /// listener holds now (portserver.py skips busy ports too; this only keeps
    /// both servers on an equal pool).
    fn pool_start() -> u32 {
        // Below Linux's default ephemeral range (32768-60999).
        for start in (10_000..32_768 - POOL).step_by(1000) {
            if (start..start + POOL)
                .step_by(97)
                .all(|port| std::net::TcpListener::bind(("0.0.0.0", port as u16)).is_ok())
            {
                return start;
            }
        }
        15_000
    }

    /// A venv with portpicker 1.6.0 (whose package installs portserver.py) and
    /// psutil, made once and kept under the target folder.
    fn venv() -> PathBuf {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portpicker-1.6.0-venv");
        if !venv.join("bin/portserver.py").exists() {
            let _ = std::fs::remove_dir_all(&venv);
            assert!(
                Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv)
                    .status()
                    .unwrap()
                    .success()
            );
            let installed = Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "portpicker==1.6.0",
                    "psutil",
                ])
                .status()
                .unwrap();
            assert!(installed.success(), "pip install portpicker==1.6.0 psutil");
        }
        venv
    }
}
