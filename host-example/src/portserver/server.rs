//! The server: an accept loop that watches its signals and its allocator, a
//! task per connection that reads one bounded request, looks up who asks
//! and for whom, and hands the request to the allocator (`allocator.rs`).
//!
//! Connections are bounded ([`CONNECTIONS`]), but one that has not sent its
//! request yet gives way: when every place is taken, a new connection
//! closes the one that has waited longest without sending, so a client
//! holding hundreds of idle connections delays nobody else by more than a
//! request's time.

use super::allocator::{Allocator, BATCH, Job};
use super::check::Checkers;
use super::owner;
use super::pool::Pool;
use super::protocol;
use super::signals::{Signal, Signals};
use super::{Address, Config, fdpass, state};
use crate::PortBlock;
use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Connections served at once. Past it, the connection that has waited
/// longest without sending a request is closed for the new one.
const CONNECTIONS: usize = 512;

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
    pub(super) ports_checked_for_last_request: AtomicU64,
    ports_held: AtomicU64,
    ports_managed: AtomicU64,
    state_write_failures: AtomicU64,
    idle_connections_closed: AtomicU64,
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
        writeln!(
            f,
            "state-write-failures {}",
            get(&self.state_write_failures)
        )?;
        writeln!(
            f,
            "idle-connections-closed {}",
            get(&self.idle_connections_closed)
        )?;
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

/// What the allocator reports, once a batch is settled.
impl Stats {
    /// The pool's counts as they are now: they follow the pool, never the
    /// requests, so they cannot drift from it.
    pub(super) fn set_pool(&self, pool: &Pool) {
        self.ports_managed
            .store(pool.len() as u64, Ordering::Relaxed);
        self.ports_held
            .store(pool.held_count() as u64, Ordering::Relaxed);
    }

    pub(super) fn refused(&self, requests: u64) {
        self.denied_allocations
            .fetch_add(requests, Ordering::Relaxed);
    }

    pub(super) fn allocated(&self, ports: u64) {
        self.allocations.fetch_add(ports, Ordering::Relaxed);
    }

    pub(super) fn released(&self, ports: u64) {
        self.released.fetch_add(ports, Ordering::Relaxed);
    }

    pub(super) fn state_written(&self, took: Duration) {
        bump(&self.batches);
        self.state_write_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn state_write_failed(&self) {
        bump(&self.state_write_failures);
    }
}

/// Serves until SIGTERM or SIGINT, and returns with its signal handlers
/// gone. Errors are the start's (a socket that cannot be bound, a path that
/// is not a socket, a damaged state file, a component that does not load) or
/// the allocator's end, which leaves no request answerable.
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

    // The handlers come before the socket: a client that can connect can
    // also stop the server with a signal, and never kills it by one.
    let signals = Signals::install().map_err(|e| format!("cannot handle signals: {e}"))?;
    let listener = bind(&config.address)?;
    let stats = Arc::new(Stats::default());
    let (jobs, queue) = mpsc::channel(BATCH * 4);
    let allocator = Allocator::new(
        pool,
        checkers,
        lines,
        config.state_file.clone(),
        stats.clone(),
    );
    let allocator = tokio::spawn(allocator.run(queue));
    println!(
        "portserver: serving {} ports ({}) at {}",
        stats.ports_managed.load(Ordering::Relaxed),
        config.pool_text,
        config.address
    );
    let accepted = Accepting {
        listener,
        signals: &signals,
        jobs,
        stats: stats.clone(),
        read_timeout: config.read_timeout,
    }
    .run(allocator)
    .await;
    if let Address::Path(path) = &config.address {
        let _ = std::fs::remove_file(path);
    }
    drop(signals);
    match &accepted {
        Ok(()) => eprintln!("portserver: stopped\n{stats}"),
        Err(_) => eprintln!("portserver: statistics at the failure\n{stats}"),
    }
    accepted
}

/// The accept loop's pieces.
struct Accepting<'a> {
    listener: UnixListener,
    signals: &'a Signals,
    jobs: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    read_timeout: Duration,
}

impl Accepting<'_> {
    /// Accepts until a stop signal (`Ok`) or the allocator's end (`Err`: it
    /// only ends by a panic or a bug while the server holds its queue, and
    /// a server without it would close every request unanswered).
    async fn run(self, mut allocator: JoinHandle<()>) -> Result<(), String> {
        let permits = Arc::new(Semaphore::new(CONNECTIONS));
        let waiting = Arc::new(Waiting::default());
        // A connection accepted while every place was taken, waiting for
        // the place that the one it closed gives up.
        let mut pending: Option<UnixStream> = None;
        loop {
            // Biased: a signal that came before a connection is seen first.
            tokio::select! {
                biased;
                signal = self.signals.next() => match signal {
                    Signal::Statistics => eprintln!("portserver statistics:\n{}", self.stats),
                    Signal::Stop => return Ok(()),
                },
                ended = &mut allocator => return Err(allocator_failure(ended)),
                permit = permits.clone().acquire_owned(), if pending.is_some() => {
                    if let (Ok(permit), Some(stream)) = (permit, pending.take()) {
                        self.spawn(stream, permit, &waiting);
                    }
                }
                accepted = self.listener.accept(), if pending.is_none() => match accepted {
                    Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                        Ok(permit) => self.spawn(stream, permit, &waiting),
                        Err(_) => {
                            if waiting.close_oldest() {
                                bump(&self.stats.idle_connections_closed);
                            }
                            pending = Some(stream);
                        }
                    },
                    // Out of descriptors, or a connection reset before it was
                    // accepted: the server goes on; a short pause lets
                    // descriptors come back instead of spinning.
                    Err(error) => {
                        eprintln!("warning: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    }

    fn spawn(&self, stream: UnixStream, permit: OwnedSemaphorePermit, waiting: &Arc<Waiting>) {
        let (jobs, stats, waiting) = (self.jobs.clone(), self.stats.clone(), waiting.clone());
        let timeout = self.read_timeout;
        tokio::spawn(async move {
            connection(stream, jobs, &stats, timeout, &waiting).await;
            drop(permit);
        });
    }
}

/// Why the allocator's end stops the server, in one line.
fn allocator_failure(ended: Result<(), tokio::task::JoinError>) -> String {
    let why = match ended {
        Ok(()) => "it returned while the server was running".to_owned(),
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let text = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            format!("it panicked: {text}")
        }
        Err(error) => error.to_string(),
    };
    format!(
        "the port server's allocator stopped ({why}); no request can be answered, so the server stops"
    )
}

/// Connections still sending their request, oldest first, each with the
/// means to close it.
#[derive(Default)]
struct Waiting {
    next: AtomicU64,
    closers: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
}

impl Waiting {
    /// A new connection's place in line and the signal that closes it.
    fn enter(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (closer, closed) = oneshot::channel();
        self.closers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, closer);
        (id, closed)
    }

    /// The connection's request came (or it ended): it is no longer idle.
    fn leave(&self, id: u64) {
        self.closers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
    }

    /// Closes the connection that has waited longest; false if none waits.
    fn close_oldest(&self) -> bool {
        let oldest = self
            .closers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_first();
        oldest.is_some_and(|(_, closer)| closer.send(()).is_ok())
    }
}

/// The listening socket. A socket file left by a server that was killed is
/// replaced; a live server's is not, and nothing that is not a socket is
/// ever removed: a mistyped path must not cost a file.
fn bind(address: &Address) -> Result<UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
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
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_socket() => {
                    if StdStream::connect(path).is_ok() {
                        return Err(format!("a server is already listening at {address}"));
                    }
                    std::fs::remove_file(path).map_err(error)?;
                }
                Ok(meta) => {
                    let kind = if meta.is_dir() {
                        "a directory"
                    } else if meta.is_symlink() {
                        "a symbolic link"
                    } else if meta.is_file() {
                        "a regular file"
                    } else {
                        "a file that is not a socket"
                    };
                    return Err(format!(
                        "cannot listen at {address}: it is {kind}, not a socket; \
                         it was left as it is (name a path that is free or holds a socket)"
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(error(e)),
            }
            StdListener::bind(path).map_err(error)?
        }
    };
    listener.set_nonblocking(true).map_err(error)?;
    UnixListener::from_std(listener).map_err(error)
}

/// One connection: a bounded read, who asks and for whom, the allocator's
/// answer, one write, close. Anything wrong ends in a close without a reply.
async fn connection(
    mut stream: UnixStream,
    jobs: mpsc::Sender<Job>,
    stats: &Stats,
    timeout: Duration,
    waiting: &Waiting,
) {
    bump(&stats.requests);
    let (place, closed) = waiting.enter();
    let read = tokio::select! {
        biased;
        read = tokio::time::timeout(timeout, read_request(&mut stream)) => read.ok().flatten(),
        _ = closed => None,
    };
    waiting.leave(place);
    let request = match read.map(|bytes| protocol::parse(&bytes)) {
        Some(Ok(request)) => request,
        _ => {
            bump(&stats.client_request_errors);
            return;
        }
    };
    // portserver.py's rule: pids <= 0, init and dead pids get nothing. The
    // lookup (a /proc read, a pidfd) is made here, beside the other
    // connections, not in the allocator that serves them all.
    let Some(owner) = owner::live_owner(request.pid()) else {
        bump(&stats.denied_allocations);
        return;
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
    let job = Job {
        request,
        owner,
        reply,
    };
    if jobs.send(job).await.is_err() {
        return;
    }
    let Ok(Some(granted)) = answer.await else {
        return;
    };
    let line = protocol::reply(&granted.ports);
    if granted.sockets.is_empty() {
        // One write, as portpicker's clients read a single chunk.
        let _ = stream.write_all(line.as_bytes()).await;
    } else {
        let fds: Vec<_> = granted
            .sockets
            .iter()
            .map(|socket| socket.as_fd())
            .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portserver::signals::TEST_LOCK;

    #[test]
    fn the_allocators_end_stops_the_server_with_its_reason() {
        let _alone = TEST_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stopped = runtime.block_on(async {
            let signals = Signals::install().unwrap();
            let name = format!("port-host-unit-allocator-{}", std::process::id());
            let listener = bind(&Address::Abstract(name.into_bytes())).unwrap();
            let (jobs, _queue) = mpsc::channel(1);
            let allocator = tokio::spawn(async { panic!("a bug in the pool") });
            Accepting {
                listener,
                signals: &signals,
                jobs,
                stats: Arc::new(Stats::default()),
                read_timeout: Duration::from_secs(1),
            }
            .run(allocator)
            .await
        });
        let error = stopped.unwrap_err();
        assert!(error.contains("allocator stopped"), "{error}");
        assert!(error.contains("a bug in the pool"), "{error}");
    }
}
