//! `port-host portserver`: portpicker's protocol byte for byte, against the
//! real portpicker client, and the rules that make its ports collide
//! never: live owners known by (pid, start time), a reused pid, a killed
//! client, a killed server, and requests that are junk.
#![cfg(target_os = "linux")]

mod common;

use common::child::Child;
use common::{free_block, open_file_limits, skipped};
use port_host::portserver::{Address, client};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A `port-host portserver` child on a pool of its own, at an address and
/// with a state file of its own.
struct Server {
    child: Child,
    address: String,
    state: PathBuf,
    pool: std::ops::Range<u16>,
}

fn scratch(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portserver");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{n}-{what}", std::process::id()))
}

impl Server {
    /// A server on `len` fresh ports, at an abstract address.
    fn start(len: u16) -> Server {
        let name = scratch("server");
        let address = format!(
            "@port-host-test-{}",
            name.file_name().unwrap().to_string_lossy()
        );
        let start = free_block(len);
        Server::run(address, scratch("state"), start..start + len, &[])
    }

    fn run(address: String, state: PathBuf, pool: std::ops::Range<u16>, extra: &[&str]) -> Server {
        let child = Server::spawn(&address, &state, &pool, extra);
        let mut server = Server {
            child,
            address,
            state,
            pool,
        };
        let line = server.child.line();
        assert!(line.starts_with("portserver: serving"), "{line}");
        server
    }

    fn spawn(address: &str, state: &Path, pool: &std::ops::Range<u16>, extra: &[&str]) -> Child {
        let pool = format!("{}-{}", pool.start, pool.end - 1);
        let state = state.to_str().unwrap();
        let mut args = vec![
            "portserver",
            "--portserver_address",
            address,
            "--portserver_static_pool",
            &pool,
            "--state-file",
            state,
        ];
        // A short read timeout, unless the test names its own.
        if !extra.contains(&"--read-timeout") {
            args.extend(["--read-timeout", "1"]);
        }
        args.extend(extra);
        Child::port_host(&args)
    }

    /// The same address, state file and pool, after this one is gone.
    fn restart(mut self, extra: &[&str]) -> Server {
        self.child.signal(libc::SIGKILL);
        self.child.wait();
        Server::run(
            self.address.clone(),
            self.state.clone(),
            self.pool.clone(),
            extra,
        )
    }

    fn server(&self) -> Address {
        Address::parse(&self.address).unwrap()
    }

    /// portpicker's request for `pid`, as the client library makes it.
    fn pick(&self, pid: u32) -> std::io::Result<u16> {
        client::pick_unused_port(&self.server(), pid)
    }

    /// Sends `bytes` as one connection's request and returns the whole reply.
    fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = client::connect(&self.server()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        // The server may close before a large request is all written.
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        reply
    }

    fn in_pool(&self, port: u16) -> bool {
        self.pool.contains(&port)
    }
}

/// A live process of the test's own (a child, so this process may ask in
/// its name), killed and reaped on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn new() -> Sleeper {
        Sleeper(sleep_command().spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, and reaped: the pid names no process any more.
    fn kill(mut self) -> u32 {
        let pid = self.pid();
        self.0.kill().unwrap();
        self.0.wait().unwrap();
        pid
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleep_command() -> Command {
    let mut command = Command::new("sleep");
    command
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A throwaway venv with the real portpicker client from PyPI, made once
/// per test binary and kept under the target folder between runs; `None`,
/// said once as a skip, where it cannot be installed (no PyPI, no venv).
fn portpicker_python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portpicker-1.6.0-venv");
        let python = venv.join("bin/python");
        let ready = |python: &Path| {
            Command::new(python)
                .args(["-c", "import portpicker, psutil"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if ready(&python) {
            return Some(python);
        }
        let _ = std::fs::remove_dir_all(&venv);
        let quiet = |command: &mut Command| {
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        let installed = quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            && quiet(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .args(["portpicker==1.6.0", "psutil"]),
            );
        installed.then_some(python)
    });
    if python.is_none() {
        skipped(
            "portserver: portpicker 1.6.0 could not be installed from PyPI into a venv here, \
             so the real portpicker client was not run",
        );
    }
    python.as_deref()
}

/// portpicker's own pick_unused_port(), `count` times in one process, which
/// prints the ports on one line and then stays alive until stdin closes;
/// `None` where portpicker cannot be had (said as a skip).
fn portpicker_client(server: &Server, count: usize) -> Option<Child> {
    let script = "import portpicker, sys\n\
         ports = [portpicker.pick_unused_port() for _ in range(int(sys.argv[1]))]\n\
         print(' '.join(map(str, ports)), flush=True)\n\
         sys.stdin.read()\n";
    Some(Child::spawn(
        Command::new(portpicker_python()?)
            .args(["-c", script, &count.to_string()])
            .env("PORTSERVER_ADDRESS", &server.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    ))
}

fn ports_of(line: &str) -> Vec<u16> {
    line.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn portpickers_pick_unused_port_gets_a_pool_port_through_portserver_address() {
    let server = Server::start(8);
    let Some(mut client) = portpicker_client(&server, 1) else {
        return;
    };
    let ports = ports_of(&client.line());
    assert_eq!(ports.len(), 1);
    assert!(
        server.in_pool(ports[0]),
        "{ports:?} outside {:?}",
        server.pool
    );
}

#[test]
fn the_reply_is_the_port_and_a_newline_in_one_write_then_close() {
    let server = Server::start(4);
    let sleeper = Sleeper::new();
    let reply = server.raw(format!("{}\n", sleeper.pid()).as_bytes());
    let text = String::from_utf8(reply).unwrap();
    // The Go client strips the last byte; Python's int() takes the rest.
    let port: u16 = text.strip_suffix('\n').unwrap().parse().unwrap();
    assert!(server.in_pool(port));
    // No newline, only the end of the stream, as some clients send it.
    let mut stream = client::connect(&server.server()).unwrap();
    write!(stream, "{}", sleeper.pid()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.ends_with('\n') && reply.len() > 1, "{reply:?}");
}

#[test]
fn sixty_four_portpicker_processes_making_1000_requests_never_share_a_port() {
    const CLIENTS: usize = 64;
    const REQUESTS: usize = 1000;
    let server = Server::start(1100);
    // 1000 requests over 64 processes: 40 make 16 and 24 make 15.
    let clients: Option<Vec<Child>> = (0..CLIENTS)
        .map(|i| {
            portpicker_client(
                &server,
                REQUESTS / CLIENTS + usize::from(i < REQUESTS % CLIENTS),
            )
        })
        .collect();
    let Some(mut clients) = clients else {
        return;
    };
    // Every client prints once it has all its ports and stays alive, so at
    // the end all 64 hold their ports at once.
    let mut seen = HashSet::new();
    for client in &mut clients {
        for port in ports_of(&client.line()) {
            assert!(server.in_pool(port), "{port} is not from the server");
            assert!(
                seen.insert(port),
                "port {port} was handed to two live processes"
            );
        }
    }
    assert_eq!(seen.len(), REQUESTS);
}

#[test]
fn a_sigkilled_clients_ports_come_back() {
    let server = Server::start(3);
    let holders: Vec<Sleeper> = (0..3).map(|_| Sleeper::new()).collect();
    let held: Vec<u16> = holders
        .iter()
        .map(|h| server.pick(h.pid()).unwrap())
        .collect();
    let late = Sleeper::new();
    assert!(
        server.pick(late.pid()).is_err(),
        "the pool is empty while its holders live"
    );
    let mut holders = holders.into_iter();
    holders.next().unwrap().kill();
    assert_eq!(server.pick(late.pid()).unwrap(), held[0]);
}

/// A process whose pid is `pid`, made by writing pid - 1 to ns_last_pid
/// and forking; `None` when the kernel gave the pid to another process first.
fn process_with_pid(pid: u32) -> Option<Sleeper> {
    for _ in 0..50 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).is_err() {
            return None;
        }
        let sleeper = Sleeper::new();
        if sleeper.pid() == pid {
            return Some(sleeper);
        }
    }
    None
}

#[test]
fn a_reused_pid_does_not_inherit_its_dead_owners_port() {
    let server = Server::start(1);
    let first = Sleeper::new();
    let port = server.pick(first.pid()).unwrap();
    let pid = first.kill();
    if std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).is_err() {
        skipped("portserver pid reuse: /proc/sys/kernel/ns_last_pid is not writable here");
        return;
    }
    let Some(reused) = process_with_pid(pid) else {
        skipped("portserver pid reuse: the kernel gave the pid to another process 50 times");
        return;
    };
    assert_eq!(reused.pid(), pid);
    // The new process has the old pid but not its start time: it holds
    // nothing, may not release the old owner's port, and the port goes to
    // whoever asks next.
    assert!(client::release(&server.server(), pid, &[port]).is_err());
    let next = Sleeper::new();
    assert_eq!(server.pick(next.pid()).unwrap(), port);
}

#[test]
fn a_sigkilled_server_restarted_from_its_state_file_gives_no_duplicate() {
    // A socket file this time: the killed server's file is left behind and
    // must be replaced.
    let address = scratch("socket").to_string_lossy().into_owned();
    let start = free_block(8);
    let server = Server::run(address.clone(), scratch("state"), start..start + 8, &[]);
    let first: Vec<Sleeper> = (0..4).map(|_| Sleeper::new()).collect();
    let mut held: HashSet<u16> = first
        .iter()
        .map(|s| server.pick(s.pid()).unwrap())
        .collect();
    let server = server.restart(&[]);
    assert!(Path::new(&address).exists());
    let second: Vec<Sleeper> = (0..4).map(|_| Sleeper::new()).collect();
    for sleeper in &second {
        let port = server.pick(sleeper.pid()).unwrap();
        assert!(
            held.insert(port),
            "{port} was handed out again after the restart"
        );
    }
    let late = Sleeper::new();
    assert!(
        server.pick(late.pid()).is_err(),
        "all 8 ports are held by live processes"
    );
}

#[test]
fn a_damaged_state_file_is_refused_clearly_or_started_on_without_handing_out_what_it_hides() {
    let server = Server::start(4);
    let sleeper = Sleeper::new();
    server.pick(sleeper.pid()).unwrap();
    let (address, state, pool) = (
        server.address.clone(),
        server.state.clone(),
        server.pool.clone(),
    );
    drop(server);
    let text = std::fs::read_to_string(&state).unwrap();
    // Torn inside the first port line: every port may be hidden.
    let torn = &text[..text.find("\nend").unwrap() - 4];
    std::fs::write(&state, torn).unwrap();

    let mut refused = Server::spawn(&address, &state, &pool, &[]);
    let (status, stderr) = refused.finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is damaged") && stderr.contains("--accept-damaged-state"),
        "{stderr}"
    );

    let mut started = Server::run(address, state, pool, &["--accept-damaged-state"]);
    let other = Sleeper::new();
    assert!(
        started.pick(other.pid()).is_err(),
        "a port the damage may hide was handed out"
    );
    started.child.signal(libc::SIGTERM);
    let (status, stderr) = started.child.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("warning: the state file"), "{stderr}");
}

#[test]
fn junk_requests_are_closed_unanswered_and_the_server_keeps_serving() {
    let server = Server::start(4);
    let dead = Sleeper::new().kill();
    let megabyte = vec![b'7'; 1 << 20];
    let junk: Vec<(&str, Vec<u8>)> = vec![
        ("1 MB of digits", megabyte),
        (
            "1 MB of random bytes",
            (0..1u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
        ("non-digits", b"abc\n".to_vec()),
        ("a negative pid", b"-5\n".to_vec()),
        ("pid 2^64", b"18446744073709551616\n".to_vec()),
        ("pid 2^32", b"4294967296\n".to_vec()),
        ("pid 0", b"0\n".to_vec()),
        ("pid 1", b"1\n".to_vec()),
        ("a dead pid", format!("{dead}\n").into_bytes()),
        ("nothing", Vec::new()),
        ("an unknown form", b"give 5 1\n".to_vec()),
    ];
    for (what, bytes) in junk {
        assert_eq!(server.raw(&bytes), b"", "{what} got an answer");
    }
    let sleeper = Sleeper::new();
    assert!(server.pick(sleeper.pid()).is_ok());
}

#[test]
fn a_client_that_never_sends_is_closed_and_does_not_hold_up_others() {
    let server = Server::start(4);
    let mut silent = client::connect(&server.server()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sleeper = Sleeper::new();
    assert!(server.pick(sleeper.pid()).is_ok());
    // Closed at the server's read timeout (1 s here), without a reply.
    let mut reply = Vec::new();
    silent.read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty());
}

#[test]
fn ten_thousand_connections_opened_and_dropped_leave_the_server_serving() {
    let server = Server::start(4);
    let descriptors = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = descriptors(server.child.id());
    // In waves well under this process's open-file limit.
    let wave = (open_file_limits().0 / 4).clamp(16, 1000) as usize;
    let mut opened = 0;
    while opened < 10_000 {
        let streams: Vec<UnixStream> = (0..wave.min(10_000 - opened))
            .map(|_| client::connect(&server.server()).unwrap())
            .collect();
        opened += streams.len();
    }
    let sleeper = Sleeper::new();
    assert!(server.pick(sleeper.pid()).is_ok());
    // Every dropped connection is closed by the server too: its descriptor
    // count comes back (give its tasks a moment to see the ends).
    let mut after = descriptors(server.child.id());
    for _ in 0..600 {
        if after <= before + 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = descriptors(server.child.id());
    }
    assert!(
        after <= before + 2,
        "{before} descriptors before, {after} after"
    );
}

#[test]
fn a_client_cannot_ask_in_the_name_of_a_process_outside_its_line_of_descent() {
    let server = Server::start(4);
    let sibling = Sleeper::new();
    // `pick-port` runs as this test's child; the sleeper is its sibling.
    let mut asker = Child::port_host(&[
        "pick-port",
        "--portserver_address",
        &server.address,
        "--pid",
        &sibling.pid().to_string(),
    ]);
    let (status, stderr) = asker.finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    // For the process that ran it (this test), which is its default.
    let mut own = Child::port_host(&["pick-port", "--portserver_address", &server.address]);
    let port: u16 = own.line().parse().unwrap();
    assert!(server.in_pool(port));
    assert!(own.wait().success());
}

#[test]
fn several_ports_are_handed_out_all_or_none() {
    let server = Server::start(4);
    let sleeper = Sleeper::new();
    let three = client::get_ports(&server.server(), sleeper.pid(), 3).unwrap();
    assert_eq!(three.iter().collect::<HashSet<_>>().len(), 3);
    assert!(client::get_ports(&server.server(), sleeper.pid(), 2).is_err());
    let last = client::get_ports(&server.server(), sleeper.pid(), 1).unwrap();
    assert!(
        !three.contains(&last[0]),
        "the refused request took nothing"
    );
}

#[test]
fn release_gives_ports_back_only_when_the_asker_holds_them_all() {
    let server = Server::start(2);
    let (owner, other) = (Sleeper::new(), Sleeper::new());
    let ports = client::get_ports(&server.server(), owner.pid(), 2).unwrap();
    assert!(client::release(&server.server(), other.pid(), &ports[..1]).is_err());
    assert!(client::release(&server.server(), owner.pid(), &[ports[0], 1]).is_err());
    client::release(&server.server(), owner.pid(), &ports[..1]).unwrap();
    assert_eq!(server.pick(other.pid()).unwrap(), ports[0]);
}

#[test]
fn the_socket_form_hands_over_listening_sockets_that_hold_their_ports() {
    let server = Server::start(4);
    let held = client::get_sockets(&server.server(), std::process::id(), 2).unwrap();
    for (port, listener) in &held {
        assert!(server.in_pool(*port));
        assert_eq!(listener.local_addr().unwrap().port(), *port);
        assert!(TcpListener::bind((Ipv4Addr::UNSPECIFIED, *port)).is_err());
        let mut connection = TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        connection.write_all(b"hi").unwrap();
        let mut greeting = [0u8; 2];
        accepted.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"hi");
    }
}

#[test]
fn the_python_client_module_gets_sockets_and_releases_them() {
    let server = Server::start(4);
    let module = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/hbutils_port/portserver_client.py"
    );
    // The module needs nothing but the standard library, so it is loaded
    // from its file, without the compiled package around it.
    let script = "import importlib.util, sys\n\
         spec = importlib.util.spec_from_file_location('portserver_client', sys.argv[1])\n\
         c = importlib.util.module_from_spec(spec); spec.loader.exec_module(c)\n\
         [(port, sock)] = c.get_sockets_from_server(1)\n\
         assert sock.getsockname()[1] == port, sock.getsockname()\n\
         ports = c.get_ports_from_server(2)\n\
         c.release_ports_to_server(ports)\n\
         try:\n    c.release_ports_to_server(ports)\nexcept c.PortServerError:\n    pass\nelse:\n    raise SystemExit('a second release was accepted')\n\
         print(port, *ports)\n";
    let output = Command::new("python3")
        .args(["-c", script, module])
        .env("PORTSERVER_ADDRESS", &server.address)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ports = ports_of(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(ports.len(), 3);
    assert!(ports.iter().all(|&p| server.in_pool(p)));
}

#[test]
fn a_port_held_by_udp_or_on_ipv6_only_is_not_handed_out() {
    let server = Server::start(1);
    let port = server.pool.start;
    let sleeper = Sleeper::new();
    let holders: Vec<Box<dyn FnOnce() -> Box<dyn std::any::Any>>> = vec![
        Box::new(move || Box::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap())),
        Box::new(move || Box::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap())),
        Box::new(move || Box::new(common::hold(common::Holder::Ipv6LoopbackOnly, port))),
    ];
    let ipv6 = common::ipv6_loopback();
    for (i, hold) in holders.into_iter().enumerate() {
        if i == 2 && !ipv6 {
            skipped("portserver: no IPv6 loopback here, so an IPv6-only holder cannot be made");
            continue;
        }
        let holder = hold();
        assert!(
            server.pick(sleeper.pid()).is_err(),
            "holder {i}: the held port was handed out"
        );
        drop(holder);
    }
    assert_eq!(server.pick(sleeper.pid()).unwrap(), port);
}

#[test]
fn sigusr1_prints_statistics_and_sigterm_exits_cleanly_removing_the_socket_file() {
    let address = scratch("socket").to_string_lossy().into_owned();
    let start = free_block(2);
    let mut server = Server::run(address.clone(), scratch("state"), start..start + 2, &[]);
    let sleeper = Sleeper::new();
    server.pick(sleeper.pid()).unwrap();
    server.child.signal(libc::SIGUSR1);
    // A request after the signal is answered after the statistics are out.
    server.pick(sleeper.pid()).unwrap();
    server.child.signal(libc::SIGTERM);
    let (status, stderr) = server.child.finish();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("portserver statistics:"), "{stderr}");
    assert!(stderr.contains("total-allocations 2"), "{stderr}");
    assert!(
        !Path::new(&address).exists(),
        "the socket file is left behind"
    );
}

#[test]
fn an_address_path_that_holds_anything_but_a_socket_is_refused_and_left_intact() {
    let start = free_block(2);
    let file = scratch("notes.txt");
    std::fs::write(&file, "notes a typo must not cost\n").unwrap();
    let directory = scratch("a-directory");
    std::fs::create_dir_all(&directory).unwrap();
    let link = scratch("a-link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    for (what, path) in [
        ("a regular file", &file),
        ("a directory", &directory),
        ("a symbolic link", &link),
    ] {
        let address = path.to_str().unwrap();
        let mut refused = Server::spawn(address, &scratch("state"), &(start..start + 2), &[]);
        let (status, stderr) = refused.finish();
        assert_eq!(status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("it is {what}, not a socket")),
            "{what}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "notes a typo must not cost\n"
    );
    assert!(directory.is_dir());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
fn the_requests_portserver_py_reads_with_int_are_answered() {
    let server = Server::start(8);
    let sleeper = Sleeper::new();
    let pid = sleeper.pid();
    let forms = [
        format!(" {pid}\n"),
        format!("{pid}\r\n"),
        format!("\t{pid} \n"),
        format!("+{pid}\n"),
        format!("0{pid}\n"),
    ];
    for form in forms {
        let reply = server.raw(form.as_bytes());
        let port = protocol_port(&reply);
        assert!(
            port.is_some_and(|port| server.in_pool(port)),
            "{form:?} got {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
}

fn protocol_port(reply: &[u8]) -> Option<u16> {
    std::str::from_utf8(reply)
        .ok()?
        .strip_suffix('\n')?
        .parse()
        .ok()
}

/// The server's SIGUSR1 statistics, read from its stderr up to the last line.
fn statistics(server: &mut Server) -> String {
    server.child.signal(libc::SIGUSR1);
    let mut text = String::new();
    loop {
        let line = server.child.err_line();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("idle-connections-closed") {
            return text;
        }
    }
}

fn counter(statistics: &str, name: &str) -> u64 {
    statistics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {statistics}"))
}

#[test]
fn a_release_that_names_a_port_twice_is_refused_and_the_counts_follow_the_pool() {
    let mut server = Server::start(4);
    let owner = Sleeper::new();
    let ports = client::get_ports(&server.server(), owner.pid(), 2).unwrap();
    assert!(client::release(&server.server(), owner.pid(), &[ports[0], ports[0]]).is_err());
    let stats = statistics(&mut server);
    assert_eq!(counter(&stats, "ports-held"), 2, "{stats}");
    assert_eq!(counter(&stats, "ports-released"), 0, "{stats}");
    client::release(&server.server(), owner.pid(), &ports[..1]).unwrap();
    let stats = statistics(&mut server);
    assert_eq!(counter(&stats, "ports-held"), 1, "{stats}");
    assert_eq!(counter(&stats, "ports-released"), 1, "{stats}");
    assert_eq!(counter(&stats, "total-allocations"), 2, "{stats}");
}

#[test]
fn a_busy_port_is_passed_over_for_the_next_free_one() {
    let server = Server::start(3);
    // The walk starts at the pool's first port; someone outside holds it.
    let outsider = TcpListener::bind((Ipv4Addr::UNSPECIFIED, server.pool.start)).unwrap();
    let sleeper = Sleeper::new();
    let port = server.pick(sleeper.pid()).unwrap();
    assert_ne!(port, server.pool.start);
    assert!(server.in_pool(port));
    drop(outsider);
}

#[test]
fn hundreds_of_idle_connections_do_not_hold_up_another_client() {
    const IDLE: usize = 600;
    common::allow_open_files(IDLE as u64 + 64);
    if open_file_limits().0 < IDLE as u64 + 64 {
        skipped("portserver idle connections: the open-file limit is below 664 here");
        return;
    }
    // A read timeout of 30 s, as a server on a shared host might have: an
    // answer that waited for idle connections to time out would take that.
    let start = free_block(4);
    let name = scratch("server");
    let address = format!(
        "@port-host-test-{}",
        name.file_name().unwrap().to_string_lossy()
    );
    let server = Server::run(
        address,
        scratch("state"),
        start..start + 4,
        &["--read-timeout", "30"],
    );
    let idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| client::connect(&server.server()).unwrap())
        .collect();
    let sleeper = Sleeper::new();
    let asked = std::time::Instant::now();
    let answer = server.pick(sleeper.pid());
    let took = asked.elapsed();
    assert!(answer.is_ok(), "{answer:?}");
    assert!(
        took < Duration::from_secs(1),
        "answered after {took:?}, behind {IDLE} idle connections"
    );
    drop(idle);
}

/// A tmpfs of `kib` KiB mounted at a new folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(kib: u32) -> Option<Tmpfs> {
        let dir = scratch("tmpfs");
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Tmpfs(dir))
    }

    /// Fills what is left of it.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_state_write_that_fails_undoes_its_batch_and_a_restart_hands_no_port_twice() {
    let Some(tmpfs) = Tmpfs::mount(64) else {
        skipped("portserver full file system: mounting a tmpfs needs root");
        return;
    };
    let name = scratch("server");
    let address = format!(
        "@port-host-test-{}",
        name.file_name().unwrap().to_string_lossy()
    );
    let start = free_block(2);
    let pool = start..start + 2;
    let mut server = Server::run(address, tmpfs.0.join("state"), pool.clone(), &[]);
    let (a, b, c) = (Sleeper::new(), Sleeper::new(), Sleeper::new());
    let first = server.pick(a.pid()).unwrap();

    let filler = tmpfs.fill();
    // Neither change can be recorded, so neither may happen: A keeps its
    // port (it was told the release failed) and B gets nothing.
    assert!(client::release(&server.server(), a.pid(), &[first]).is_err());
    assert!(server.pick(b.pid()).is_err());
    let stats = statistics(&mut server);
    assert_eq!(counter(&stats, "ports-held"), 1, "{stats}");
    assert!(counter(&stats, "state-write-failures") >= 2, "{stats}");
    assert_eq!(counter(&stats, "ports-released"), 0, "{stats}");
    std::fs::remove_file(filler).unwrap();

    let second = server.pick(c.pid()).unwrap();
    assert_ne!(second, first, "A's port went to C while A holds it");
    let server = server.restart(&[]);
    let late = Sleeper::new();
    assert!(
        server.pick(late.pid()).is_err(),
        "after the restart a port held by A or C was handed out again"
    );
    drop(server);
    drop(tmpfs);
}
