//! The allocator: the one task that owns the pool and the state file.
//!
//! Group commit: it takes every request waiting, answers them all against
//! the pool, writes the state once (fsync and rename), and only then lets
//! the connections reply. One write covers a whole batch, so the cost of
//! durability is shared by everyone waiting rather than paid per request.
//! A batch whose write fails is undone whole: the pool goes back to what the
//! file records and every connection of the batch closes unanswered, so a
//! port is never held in memory for an owner who was not told, nor freed
//! for one who was told it still holds it.
//!
//! Nothing here blocks on the kernel for an owner: the connections look up
//! their own askers, and the liveness of earlier holders met on a walk is
//! looked up off this task, a chunk of holders at a time.

use super::check::Checkers;
use super::owner::{self, Owner};
use super::pool::{Holder, Pool};
use super::protocol::Request;
use super::server::Stats;
use super::state;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The most requests one state write covers.
pub const BATCH: usize = 1024;

/// The most ports checked at once: a batch's worth, spread over the
/// checkers.
const CHECKS_AT_ONCE: usize = 256;

/// What a connection is granted: its ports and, for a `socket` request,
/// their listening sockets.
pub struct Granted {
    pub ports: Vec<u16>,
    pub sockets: Vec<OwnedFd>,
}

/// The allocator's answer to a job: `None` is a refusal.
pub type Answer = Option<Granted>;

/// One request, made for a live `owner` the connection has looked up.
pub struct Job {
    pub request: Request,
    pub owner: Owner,
    pub reply: oneshot::Sender<Answer>,
}

/// How many ports a take request asks for (0 for a release).
fn ports_wanted(request: &Request) -> usize {
    match request {
        Request::Legacy { .. } => 1,
        Request::Get { count, .. } | Request::Socket { count, .. } => *count,
        Request::Release { .. } => 0,
    }
}

/// Where a batch's ports come from: one walk of the pool, and the slots
/// already checked free on it.
struct Supply {
    walk: Box<dyn Iterator<Item = usize> + Send>,
    walked: bool,
    free: VecDeque<usize>,
    /// Ports the batch's requests still ask for.
    wanted: usize,
    /// Whether each earlier holder met on the walk still lives.
    alive: HashMap<Owner, bool>,
    checked: u64,
}

pub struct Allocator {
    pool: Pool,
    checkers: Checkers,
    lines: state::Lines,
    state_file: PathBuf,
    stats: Arc<Stats>,
}

impl Allocator {
    /// The allocator of `pool`, whose state `lines` were written to
    /// `state_file` last.
    pub fn new(
        mut pool: Pool,
        checkers: Checkers,
        lines: state::Lines,
        state_file: PathBuf,
        stats: Arc<Stats>,
    ) -> Self {
        pool.commit();
        let _ = pool.take_changed();
        stats.set_pool(&pool);
        Allocator {
            pool,
            checkers,
            lines,
            state_file,
            stats,
        }
    }

    /// Answers batches until every sender is gone.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(BATCH);
        while queue.recv_many(&mut batch, BATCH).await > 0 {
            let answers = self.answer_batch(&batch).await;
            if self.pool.has_uncommitted() && !self.persist().await {
                // Nothing is promised that the state does not record: the
                // batch is undone and its connections close unanswered (the
                // sockets of `socket` answers close with them).
                self.pool.roll_back();
                for slot in self.pool.take_changed() {
                    self.lines.update(&self.pool, slot);
                }
                self.stats.refused(batch.len() as u64);
                batch.clear();
                continue;
            }
            self.pool.commit();
            for (job, answer) in batch.drain(..).zip(answers) {
                match (&answer, &job.request) {
                    (None, _) => self.stats.refused(1),
                    (Some(granted), Request::Release { .. }) => {
                        self.stats.released(granted.ports.len() as u64)
                    }
                    (Some(granted), _) => self.stats.allocated(granted.ports.len() as u64),
                }
                let _ = job.reply.send(answer);
            }
            self.stats.set_pool(&self.pool);
        }
    }

    /// Answers a batch in the order it came. Its ports are checked ahead,
    /// as many as it asks for at once, on every checker.
    async fn answer_batch(&mut self, batch: &[Job]) -> Vec<Answer> {
        let mut supply = Supply {
            walk: Box::new(self.pool.walk()),
            walked: false,
            free: VecDeque::new(),
            wanted: batch.iter().map(|job| ports_wanted(&job.request)).sum(),
            alive: HashMap::new(),
            checked: 0,
        };
        let mut answers = Vec::with_capacity(batch.len());
        for job in batch {
            let answer = match &job.request {
                Request::Release { ports, .. } => self.release(job.owner, ports),
                request => {
                    let sockets = matches!(request, Request::Socket { .. });
                    self.take(job.owner, ports_wanted(request), sockets, &mut supply)
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
        self.stats.state_written(started.elapsed());
        match written {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                eprintln!(
                    "warning: cannot write the state file {}: {error}; the batch's requests \
                     are refused and the pool is as the file records it",
                    self.state_file.display()
                );
                self.stats.state_write_failed();
                false
            }
            Err(error) => {
                eprintln!("warning: the state writer failed: {error}");
                self.stats.state_write_failed();
                false
            }
        }
    }

    /// The next slot that is the pool's to give and checked free, checking
    /// as many at once as the batch still wants; `None` once the walk has
    /// gone round the pool.
    async fn next_free(&mut self, supply: &mut Supply) -> Option<usize> {
        while supply.free.is_empty() && !supply.walked {
            let chunk = supply.wanted.clamp(1, CHECKS_AT_ONCE);
            let mut slots = Vec::with_capacity(chunk);
            let mut unknown = Vec::new();
            while slots.len() < chunk {
                let Some(slot) = supply.walk.next() else {
                    supply.walked = true;
                    break;
                };
                match self.pool.holder(slot) {
                    None => slots.push(slot),
                    Some(Holder::Unknown) => {}
                    Some(Holder::Owner(holder)) => match supply.alive.get(&holder) {
                        Some(true) => {}
                        Some(false) => slots.push(slot),
                        None => {
                            unknown.push(holder);
                            slots.push(slot);
                        }
                    },
                }
            }
            if !unknown.is_empty() {
                self.look_up(unknown, &mut supply.alive).await;
                let (pool, alive) = (&self.pool, &supply.alive);
                slots.retain(|&slot| match pool.holder(slot) {
                    Some(Holder::Owner(holder)) => alive.get(&holder) == Some(&false),
                    _ => true,
                });
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

    /// Whether each holder still lives, looked up on a blocking thread. A
    /// holder that could not be looked up counts as alive: its port is not
    /// reclaimed on a guess.
    async fn look_up(&self, holders: Vec<Owner>, alive: &mut HashMap<Owner, bool>) {
        let asked = holders.clone();
        let looked = tokio::task::spawn_blocking(move || {
            holders
                .into_iter()
                .map(|holder| (holder, owner::alive(holder)))
                .collect::<Vec<_>>()
        })
        .await;
        match looked {
            Ok(looked) => alive.extend(looked),
            Err(_) => alive.extend(asked.into_iter().map(|holder| (holder, true))),
        }
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
            self.pool.hand_out(slot, Holder::Owner(owner));
            ports.push(self.pool.port(slot));
            fds.extend(socket);
        }
        Some(Granted {
            ports,
            sockets: fds,
        })
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
        Some(Granted {
            ports: ports.to_vec(),
            sockets: Vec::new(),
        })
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
