//! The server: an accept loop, a task per connection that reads one bounded
//! request, and one allocator task that owns the pool and the state file.
//!
//! Group commit: the allocator takes every request waiting, answers them all
//! against the pool, writes the state once (fsync and rename), and only then
//! lets the connections reply. One write covers a whole batch, so the cost
//! of durability is shared by everyone waiting rather than paid per request.

use super::check::Checkers;
use super::owner::{self, Owner};
use super::pool::{Holder, Pool};
use super::protocol::{self, Request};
use super::signals::{Signal, Signals};
use super::{Address, Config, fdpass, state};
use crate::PortBlock;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Connections served at once; the rest wait in the listen backlog, so a
/// flood of connections costs descriptors up to this and no more.
const CONNECTIONS: usize = 512;

/// The most requests one state write covers.
const BATCH: usize = 1024;

/// The most ports checked at once: a batch's worth, spread over the
/// checkers.
const CHECKS_AT_ONCE: usize = 256;

/// What the server counts; printed on SIGUSR1 and at exit.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    allocations: AtomicU64,
    denied_allocations: AtomicU64,
    client_request_errors: AtomicU64,
    peer_mismatches: AtomicU64,
    released: AtomicU64,
    batches: AtomicU64,
    state_write_micros: AtomicU64,
    ports_checked_for_last_request: AtomicU64,
    ports_held: AtomicU64,
    ports_managed: AtomicU64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let batches = get(&self.batches).max(1);
        // The names portserver.py's dump_stats uses, then ours.
        writeln!(
            f,
            "client-request-errors {}",
            get(&self.client_request_errors)
        )?;
        writeln!(f, "denied-allocations {}", get(&self.denied_allocations))?;
        writeln!(f, "num-ports-managed {}", get(&self.ports_managed))?;
        writeln!(
            f,
            "num-ports-checked-for-last-request {}",
            get(&self.ports_checked_for_last_request)
        )?;
        writeln!(f, "total-allocations {}", get(&self.allocations))?;
        writeln!(f, "requests {}", get(&self.requests))?;
        writeln!(
            f,
            "peer-credential-mismatches {}",
            get(&self.peer_mismatches)
        )?;
        writeln!(f, "ports-released {}", get(&self.released))?;
        writeln!(f, "ports-held {}", get(&self.ports_held))?;
        writeln!(f, "state-writes {}", get(&self.batches))?;
        write!(
            f,
            "mean-state-write-us {}",
            get(&self.state_write_micros) / batches
        )
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the allocator answers a connection: the ports (and, for a `socket`
/// request, their listening sockets), or `None` for a refusal.
type Answer = Option<(Vec<u16>, Vec<OwnedFd>)>;

struct Job {
    request: Request,
    reply: oneshot::Sender<Answer>,
}

/// Serves until SIGTERM or SIGINT. Errors are the start's: a socket that
/// cannot be bound, a damaged state file, a component that does not load.
pub async fn serve(config: Config) -> Result<(), String> {
    let mut pool = Pool::new(config.pool.clone());
    let boot = owner::boot_id();
    let loaded = state::load(
        &config.state_file,
        &mut pool,
        &boot,
        config.accept_damaged_state,
    )?;
    if let Some(damage) = &loaded.damage {
        eprintln!(
            "warning: the state file {} is damaged ({damage}); {} ports it may name are held \
             by an unknown owner and will not be handed out",
            config.state_file.display(),
            loaded.unknown
        );
    }
    let (low, high) = match (config.pool.first(), config.pool.last()) {
        (Some(&low), Some(&high)) => (low, high),
        _ => return Err("the pool holds no port".into()),
    };
    let span = PortBlock::new(u32::from(low)..u32::from(high) + 1).map_err(|e| e.to_string())?;
    // A checker per core: the check is most of a request's work.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let checkers =
        Checkers::start(span, cores).map_err(|e| format!("the component does not load: {e:#}"))?;
    // The loaded state is written back at once: a damaged file becomes a
    // clean one (its unknown holders kept), and an unwritable directory is
    // found now rather than at the first request.
    let lines = state::Lines::new(&pool, &boot);
    state::write(&config.state_file, &lines.text()).map_err(|e| {
        format!(
            "cannot write the state file {}: {e}",
            config.state_file.display()
        )
    })?;

    let listener = bind(&config.address)?;
    let stats = Arc::new(Stats::default());
    stats
        .ports_managed
        .store(pool.len() as u64, Ordering::Relaxed);
    stats
        .ports_held
        .store(pool.held().count() as u64, Ordering::Relaxed);
    let (jobs, queue) = mpsc::channel(BATCH * 4);
    let allocator = Allocator {
        pool,
        checkers,
        lines,
        state_file: config.state_file.clone(),
        stats: stats.clone(),
    };
    tokio::spawn(allocator.run(queue));

    let signals = Signals::install().map_err(|e| format!("cannot handle signals: {e}"))?;
    println!(
        "portserver: serving {} ports ({}) at {}",
        stats.ports_managed.load(Ordering::Relaxed),
        config.pool_text,
        config.address
    );
    let permits = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        // Biased: a signal that came before a connection is seen first.
        tokio::select! {
            biased;
            signal = signals.next() => match signal {
                Signal::Statistics => eprintln!("portserver statistics:\n{stats}"),
                Signal::Stop => break,
            },
            permit = permits.clone().acquire_owned() => {
                let Ok(permit) = permit else { break };
                let stream = tokio::select! {
                    biased;
                    signal = signals.next() => match signal {
                        Signal::Statistics => {
                            eprintln!("portserver statistics:\n{stats}");
                            continue;
                        }
                        Signal::Stop => break,
                    },
                    accepted = listener.accept() => accepted,
                };
                match stream {
                    Ok((stream, _)) => {
                        let (jobs, stats) = (jobs.clone(), stats.clone());
                        let timeout = config.read_timeout;
                        tokio::spawn(async move {
                            connection(stream, jobs, &stats, timeout).await;
                            drop(permit);
                        });
                    }
                    // Out of descriptors, or a connection reset before it was
                    // accepted: the server goes on; a short pause lets
                    // descriptors come back instead of spinning.
                    Err(error) => {
                        eprintln!("warning: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }
    if let Address::Path(path) = &config.address {
        let _ = std::fs::remove_file(path);
    }
    eprintln!("portserver: stopped\n{stats}");
    Ok(())
}

/// The listening socket; a socket file left by a server that was killed is
/// replaced, a live server's is not.
fn bind(address: &Address) -> Result<UnixListener, String> {
    use std::os::unix::net::{
        SocketAddr as UnixAddr, UnixListener as StdListener, UnixStream as StdStream,
    };
    let error = |e: std::io::Error| format!("cannot listen at {address}: {e}");
    let listener = match address {
        Address::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = UnixAddr::from_abstract_name(name).map_err(error)?;
            StdListener::bind_addr(&addr).map_err(error)?
        }
        Address::Path(path) => {
            if path.exists() {
                if StdStream::connect(path).is_ok() {
                    return Err(format!("a server is already listening at {address}"));
                }
                std::fs::remove_file(path).map_err(error)?;
            }
            StdListener::bind(path).map_err(error)?
        }
    };
    listener.set_nonblocking(true).map_err(error)?;
    UnixListener::from_std(listener).map_err(error)
}

/// One connection: a bounded read, the peer's credentials, the allocator's
/// answer, one write, close. Anything wrong ends in a close without a reply.
async fn connection(
    mut stream: UnixStream,
    jobs: mpsc::Sender<Job>,
    stats: &Stats,
    timeout: Duration,
) {
    bump(&stats.requests);
    let request = match tokio::time::timeout(timeout, read_request(&mut stream)).await {
        Ok(Some(bytes)) => protocol::parse(&bytes),
        _ => Err(protocol::Refused("no whole request in time".into())),
    };
    let request = match request {
        Ok(request) => request,
        Err(_) => {
            bump(&stats.client_request_errors);
            return;
        }
    };
    // SO_PEERCRED: who connected, as the kernel says. A client may ask for
    // itself, for a process it started (a test runner for its test) or for
    // one that started it (a script's `port-host pick-port`), never in the
    // name of a process outside its own line of descent.
    let peer = stream.peer_cred().ok().and_then(|cred| cred.pid());
    let allowed = peer
        .and_then(|peer| u32::try_from(peer).ok())
        .is_some_and(|peer| {
            let pid = request.pid();
            owner::is_self_or_descendant(pid, peer) || owner::is_self_or_descendant(peer, pid)
        });
    if !allowed {
        bump(&stats.peer_mismatches);
        bump(&stats.denied_allocations);
        return;
    }
    let (reply, answer) = oneshot::channel();
    if jobs.send(Job { request, reply }).await.is_err() {
        return;
    }
    let Ok(Some((ports, sockets))) = answer.await else {
        return;
    };
    let line = protocol::reply(&ports);
    if sockets.is_empty() {
        // One write, as portpicker's clients read a single chunk.
        let _ = stream.write_all(line.as_bytes()).await;
    } else {
        let fds: Vec<_> = sockets.iter().map(|socket| socket.as_fd()).collect();
        let _ = stream
            .async_io(Interest::WRITABLE, || {
                fdpass::send(stream.as_fd(), line.as_bytes(), &fds)
            })
            .await;
    }
}

/// Reads until a newline, the end of the stream, or more than a request may
/// take; `None` if nothing usable came.
async fn read_request(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(32);
    let mut chunk = [0u8; 256];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return (!bytes.is_empty()).then_some(bytes);
        }
        bytes.extend_from_slice(&chunk[..read]);
        // Junk past the bound is refused by the parser; nothing more is read.
        if protocol::complete(&bytes) {
            return Some(bytes);
        }
    }
}

/// Where a batch's ports come from: one walk of the pool, and the slots
/// already checked free on it.
struct Supply {
    walk: Box<dyn Iterator<Item = usize> + Send>,
    free: VecDeque<usize>,
    /// Ports the batch's requests still ask for.
    wanted: usize,
    /// Whether each earlier holder met on the walk still lives.
    alive: HashMap<Owner, bool>,
    checked: u64,
}

/// How many ports a take request asks for (0 for a release).
fn ports_wanted(request: &Request) -> usize {
    match request {
        Request::Legacy { .. } => 1,
        Request::Get { count, .. } | Request::Socket { count, .. } => *count,
        Request::Release { .. } => 0,
    }
}

struct Allocator {
    pool: Pool,
    checkers: Checkers,
    lines: state::Lines,
    state_file: std::path::PathBuf,
    stats: Arc<Stats>,
}

impl Allocator {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(BATCH);
        while queue.recv_many(&mut batch, BATCH).await > 0 {
            let answers = self.answer_batch(&batch).await;
            let changed = answers.iter().any(Option::is_some);
            if changed && !self.persist().await {
                // Nothing is promised that the state does not record: every
                // connection of the batch is closed without a reply.
                batch.clear();
                continue;
            }
            for (job, answer) in batch.drain(..).zip(answers) {
                if answer.is_none() {
                    bump(&self.stats.denied_allocations);
                }
                let _ = job.reply.send(answer);
            }
        }
    }

    /// Answers a batch in the order it came. Its ports are checked ahead,
    /// as many as it asks for at once, on every checker.
    async fn answer_batch(&mut self, batch: &[Job]) -> Vec<Answer> {
        // portserver.py's rule: pids <= 0, init and dead pids get nothing.
        let owners: Vec<Option<Owner>> = batch
            .iter()
            .map(|job| owner::live_owner(job.request.pid()))
            .collect();
        let wanted = batch
            .iter()
            .zip(&owners)
            .filter(|(_, owner)| owner.is_some())
            .map(|(job, _)| ports_wanted(&job.request))
            .sum();
        let mut supply = Supply {
            walk: Box::new(self.pool.walk()),
            free: VecDeque::new(),
            wanted,
            alive: HashMap::new(),
            checked: 0,
        };
        let mut answers = Vec::with_capacity(batch.len());
        for (job, owner) in batch.iter().zip(owners) {
            let answer = match (owner, &job.request) {
                (None, _) => None,
                (Some(owner), Request::Release { ports, .. }) => self.release(owner, ports),
                (Some(owner), request) => {
                    let sockets = matches!(request, Request::Socket { .. });
                    self.take(owner, ports_wanted(request), sockets, &mut supply)
                        .await
                }
            };
            answers.push(answer);
        }
        self.stats
            .ports_checked_for_last_request
            .store(supply.checked, Ordering::Relaxed);
        answers
    }

    /// Writes the state off the async threads; false (and a warning) if it
    /// could not be written.
    async fn persist(&mut self) -> bool {
        for slot in self.pool.take_changed() {
            self.lines.update(&self.pool, slot);
        }
        let text = self.lines.text();
        let path = self.state_file.clone();
        let started = Instant::now();
        let written = tokio::task::spawn_blocking(move || state::write(&path, &text)).await;
        let micros = started.elapsed().as_micros() as u64;
        self.stats
            .state_write_micros
            .fetch_add(micros, Ordering::Relaxed);
        bump(&self.stats.batches);
        match written {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                eprintln!(
                    "warning: cannot write the state file {}: {error}",
                    self.state_file.display()
                );
                false
            }
            Err(error) => {
                eprintln!("warning: the state writer failed: {error}");
                false
            }
        }
    }

    /// The next slot that is the pool's to give and checked free, checking
    /// as many at once as the batch still wants.
    async fn next_free(&mut self, supply: &mut Supply) -> Option<usize> {
        if supply.free.is_empty() {
            let chunk = supply.wanted.clamp(1, CHECKS_AT_ONCE);
            let mut slots = Vec::with_capacity(chunk);
            while slots.len() < chunk {
                let Some(slot) = supply.walk.next() else {
                    break;
                };
                let reclaimable = match self.pool.holder(slot) {
                    None => true,
                    Some(Holder::Unknown) => false,
                    Some(Holder::Owner(holder)) => !*supply
                        .alive
                        .entry(holder)
                        .or_insert_with(|| owner::alive(holder)),
                };
                if reclaimable {
                    slots.push(slot);
                }
            }
            let ports: Vec<u16> = slots.iter().map(|&slot| self.pool.port(slot)).collect();
            supply.checked += ports.len() as u64;
            for (slot, answer) in slots.into_iter().zip(self.checkers.check(&ports).await) {
                match answer {
                    Ok(true) => supply.free.push_back(slot),
                    Ok(false) => {}
                    Err(error) => eprintln!("warning: {error:#}"),
                }
            }
        }
        supply.free.pop_front()
    }

    /// `count` ports for `owner`, all or none; with `sockets`, each with a
    /// listening socket bound here, so nobody can take it on the way.
    async fn take(
        &mut self,
        owner: Owner,
        count: usize,
        sockets: bool,
        supply: &mut Supply,
    ) -> Answer {
        let mut taken: Vec<(usize, Option<OwnedFd>)> = Vec::with_capacity(count);
        while taken.len() < count {
            let Some(slot) = self.next_free(supply).await else {
                break;
            };
            let socket = if sockets {
                match listen(self.pool.port(slot)) {
                    Ok(socket) => Some(socket),
                    Err(_) => continue,
                }
            } else {
                None
            };
            taken.push((slot, socket));
        }
        supply.wanted = supply.wanted.saturating_sub(count);
        if taken.len() < count {
            // All or none: what this request found free is the next one's.
            for (slot, _) in taken.into_iter().rev() {
                supply.free.push_front(slot);
            }
            return None;
        }
        let mut ports = Vec::with_capacity(count);
        let mut fds = Vec::new();
        for (slot, socket) in taken {
            if self.pool.holder(slot).is_none() {
                bump(&self.stats.ports_held);
            }
            self.pool.hand_out(slot, Holder::Owner(owner));
            ports.push(self.pool.port(slot));
            fds.extend(socket);
        }
        self.stats
            .allocations
            .fetch_add(count as u64, Ordering::Relaxed);
        Some((ports, fds))
    }

    /// Gives `ports` back, if `owner` holds every one of them.
    fn release(&mut self, owner: Owner, ports: &[u16]) -> Answer {
        let slots: Vec<usize> = ports
            .iter()
            .map(|&port| self.pool.slot(port))
            .collect::<Option<_>>()?;
        if slots
            .iter()
            .any(|&slot| self.pool.holder(slot) != Some(Holder::Owner(owner)))
        {
            return None;
        }
        for &slot in &slots {
            self.pool.record(slot, None);
        }
        self.stats
            .released
            .fetch_add(slots.len() as u64, Ordering::Relaxed);
        self.stats
            .ports_held
            .fetch_sub(slots.len() as u64, Ordering::Relaxed);
        Some((ports.to_vec(), Vec::new()))
    }
}

/// A TCP socket listening on `port` on every address: `[::]` dual-stack where
/// the host has IPv6, 0.0.0.0 where it has not.
fn listen(port: u16) -> std::io::Result<OwnedFd> {
    let no_ipv6 = |error: &std::io::Error| {
        matches!(
            error.raw_os_error(),
            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
        )
    };
    let listener = match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Err(error) if no_ipv6(&error) => TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?,
        bound => bound?,
    };
    Ok(listener.into())
}
