//! The host lifecycle a Python process needs, in plain Rust: no pyo3 type
//! here, so its tests run as an ordinary test binary (`src/core_tests.rs`).
//!
//! - each [`Inner`] keeps a few idle sessions and lends one to each call,
//!   so threads never share a store;
//! - reservations live in a session of their own ([`Shared`], shared by the
//!   host's reservations), tied to it by an `Arc`, so a [`Ticket`] outlives
//!   the call that made it and is released in the store that holds it;
//! - a session that ended (trap, deadline) is replaced, never reused; its
//!   captured stderr is drained after each call, so it never fills;
//! - every object remembers the process that made it: after `fork()` the
//!   child makes a host of its own and never touches the parent's engine,
//!   runtime, sessions or locks (it leaks them rather than run their
//!   destructors against threads that do not exist in the child).
//!
//! What may run while the caller holds the GIL is marked so: it neither
//! calls the component nor waits for a lock another call may hold.

#[cfg(unix)]
use crate::fd;
use port_host::{
    AsyncSession, Candidates, ErrorCode, Limits, NetworkPolicy, PortHost, ReservationError, Stderr,
};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

/// Idle sessions a host keeps for the next calls; more are made while more
/// threads call at once, and dropped when they come back to a full pool.
const IDLE_SESSIONS: usize = 8;

/// Live resources a session needs besides its reservations' sockets: the
/// component's own (2, measured) and the probe's sockets during a search.
const SESSION_OVERHEAD: usize = 4;

/// How many sockets a reservation holds, and how many more a session's
/// search may have open at once, under `policy`. Where the host grants the
/// component's wildcard probes (macOS, the BSDs, Windows: see
/// `NetworkPolicy::with_wildcard_probes` and `src/freeness.rs`), a
/// reservation also keeps a socket bound on 0.0.0.0 and one on [::] beside
/// its listener, and a probe binds both wildcard addresses too.
fn socket_costs(policy: NetworkPolicy) -> (usize, usize) {
    let per_reservation = policy.sockets_per_reservation();
    // The probe's wildcard binds, where the guards are granted.
    (per_reservation, SESSION_OVERHEAD + per_reservation - 1)
}

/// The component's strict-fallback warning, and hbutils' words for it.
const COMPONENT_WARNING: &str = "no usable ports (>= 1024) were given, so strict mode is disabled";
const HBUTILS_WARNING: &str = "No usable ports provided, so strict mode will be disabled.";

pub fn this_process() -> u32 {
    std::process::id()
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a call could not do: the host's failure (the session is gone) or the
/// component's answer.
#[derive(Debug)]
pub enum Failure {
    Host(wasmtime::Error),
    Component(ErrorCode),
    Reservation(ReservationError),
    Fork(u32),
    Socket(String),
    /// What this OS cannot do (a socket taken, on Windows).
    Unsupported(&'static str),
}

pub type Outcome<T> = Result<T, Failure>;

/// A reservation's listening socket, taken: a descriptor of this process.
#[cfg(unix)]
pub type TakenSocket = fd::Fd;
/// None on Windows: wasmtime-wasi keeps the SOCKET private, and a process
/// cannot list its SOCKETs to find it, so a socket is never taken there
/// ([`Ticket::end`] refuses before the reservation changes).
#[cfg(not(unix))]
pub enum TakenSocket {}

/// Why a socket cannot be taken on this OS, if it cannot.
pub const SOCKET_UNSUPPORTED: Option<&str> = if cfg!(unix) {
    None
} else {
    Some(
        "Reservation.socket() is not supported on this OS: wasmtime-wasi keeps the listening \
         SOCKET private and this process cannot find it among its own; the reservation is still \
         held (release it and bind the port, or serve on a socket of your own)",
    )
};

fn flat<T, E>(
    result: wasmtime::Result<Result<T, E>>,
    wrap: impl FnOnce(E) -> Failure,
) -> Outcome<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(wrap(error)),
        Err(error) => Err(Failure::Host(error)),
    }
}

/// The component's own error, flattened into the call's outcome.
pub fn component<T>(
    (outcome, warnings): (Outcome<Result<T, ErrorCode>>, Vec<String>),
) -> (Outcome<T>, Vec<String>) {
    (
        outcome.and_then(|r| r.map_err(Failure::Component)),
        warnings,
    )
}

/// A session; its captured stderr is drained after every call.
pub struct Slot {
    session: AsyncSession,
}

impl Slot {
    /// The `warning: ` lines the guest wrote since the last look.
    fn warnings(&mut self) -> Vec<String> {
        let Some(fresh) = self.session.take_captured_stderr() else {
            return Vec::new();
        };
        fresh
            .lines()
            .filter_map(|line| line.strip_prefix("warning: "))
            .map(|warning| {
                if warning == COMPONENT_WARNING {
                    HBUTILS_WARNING.to_owned()
                } else {
                    warning.to_owned()
                }
            })
            .collect()
    }

    fn reusable(&self) -> bool {
        self.session.ended().is_none()
    }
}

/// The session the host's reservations live in. Retired (no new
/// reservations) once it ended or filled; it lives on, through the
/// reservations' `Arc`s, until the last of them goes.
pub struct Shared {
    slot: Mutex<Slot>,
    retired: AtomicBool,
    /// Whether the session ended, mirrored from it after every call, so
    /// that a reservation's state is read without waiting for the lock a
    /// call holds.
    ended: AtomicBool,
    /// Sockets promised to reservations (`Inner::per_reservation` each):
    /// those held, and those a call in
    /// flight may take. Counted so that no call can run the session into
    /// its socket quota, whose trap would end it and free every port it holds.
    promised: AtomicUsize,
}

impl Shared {
    /// The session, for one call; the flags follow it when the call is done.
    fn lock(&self) -> SharedSlot<'_> {
        SharedSlot {
            slot: lock(&self.slot),
            shared: self,
        }
    }
}

struct SharedSlot<'a> {
    slot: MutexGuard<'a, Slot>,
    shared: &'a Shared,
}

impl Drop for SharedSlot<'_> {
    fn drop(&mut self) {
        if !self.slot.reusable() {
            self.shared.ended.store(true, Ordering::Release);
            self.shared.retired.store(true, Ordering::Release);
        }
    }
}

/// A reservation that ended unreleased, for the host's release thread.
/// Fields drop in this order: the session before the host whose runtime its
/// sockets are registered with.
struct Release {
    shared: Arc<Shared>,
    reservation: port_host::Reservation,
    host: Arc<Inner>,
}

/// An engine, the compiled component, a runtime and sessions.
// Fields drop in this order: the sessions, then the engine, and the runtime
// their sockets are registered with last.
pub struct Inner {
    idle: Mutex<Vec<Slot>>,
    reserving: Mutex<Option<Arc<Shared>>>,
    host: PortHost,
    runtime: tokio::runtime::Runtime,
    releases: Sender<Release>,
    policy: NetworkPolicy,
    /// Sockets per reservation, and beside them per session (`socket_costs`).
    per_reservation: usize,
    overhead: usize,
    pid: u32,
}

impl Inner {
    pub fn new(policy: NetworkPolicy, limits: Limits) -> wasmtime::Result<Self> {
        // A runtime per host, not wasmtime-wasi's process-wide one: a forked
        // child must be able to make a working one, and its one worker
        // drives the timers the call deadline rests on. (A current-thread
        // one, driven by the callers' `block_on`s, measured the same.)
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hbutils-port")
            .enable_all()
            .build()?;
        // Reservations dropped unreleased are released on a thread of the
        // host's own: a finaliser runs with the GIL held, and a release is a
        // call into the component that may wait for the reservations'
        // session behind another call for up to the call timeout.
        let (releases, jobs) = channel();
        std::thread::Builder::new()
            .name("hbutils-port-release".into())
            .spawn(move || release_all(jobs))?;
        Ok(Inner {
            pid: this_process(),
            per_reservation: socket_costs(policy).0,
            overhead: socket_costs(policy).1,
            runtime,
            host: PortHost::embedded_load_only(limits)?,
            policy,
            idle: Mutex::new(Vec::new()),
            reserving: Mutex::new(None),
            releases,
        })
    }

    /// The process this host was made in; it works only there.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    pub fn limits(&self) -> &Limits {
        self.host.limits()
    }

    fn check_process(&self) -> Outcome<()> {
        if self.pid == this_process() {
            Ok(())
        } else {
            Err(Failure::Fork(self.pid))
        }
    }

    fn new_slot(&self) -> Outcome<Slot> {
        let session = self
            .runtime
            .block_on(self.host.async_session(self.policy, Stderr::Capture))
            .map_err(Failure::Host)?;
        Ok(Slot { session })
    }

    /// Runs `call` in an idle session (or a new one) and gives the session
    /// back if it can be used again. Never holds a lock during the call.
    pub fn query<T>(
        &self,
        call: impl AsyncFnOnce(&mut AsyncSession) -> wasmtime::Result<T>,
    ) -> (Outcome<T>, Vec<String>) {
        if let Err(failure) = self.check_process() {
            return (Err(failure), Vec::new());
        }
        let idle = lock(&self.idle).pop();
        let mut slot = match idle.map_or_else(|| self.new_slot(), Ok) {
            Ok(slot) => slot,
            Err(failure) => return (Err(failure), Vec::new()),
        };
        let outcome = self.runtime.block_on(call(&mut slot.session));
        let warnings = slot.warnings();
        if slot.reusable() {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_SESSIONS {
                idle.push(slot);
            }
        }
        (outcome.map_err(Failure::Host), warnings)
    }

    /// The session `wanted` new reservations go to, with room for them
    /// promised: the current one while it has room, else a fresh one.
    fn reserving(&self, wanted: usize) -> Outcome<Arc<Shared>> {
        let quota = self.host.limits().store.resources;
        let (per, overhead) = (self.per_reservation, self.overhead);
        let sockets = wanted.saturating_mul(per);
        if sockets.saturating_add(overhead) > quota {
            return Err(Failure::Component(ErrorCode::InvalidArgument(format!(
                "{wanted} reservations do not fit in this host's max_sockets={quota} \
                 (live sockets per session: {per} per reservation, {overhead} the component's own)"
            ))));
        }
        let mut current = lock(&self.reserving);
        if let Some(shared) = current.as_ref()
            && !shared.retired.load(Ordering::Acquire)
        {
            let promised = shared.promised.load(Ordering::Acquire);
            if promised + sockets + overhead <= quota {
                shared.promised.fetch_add(sockets, Ordering::AcqRel);
                return Ok(shared.clone());
            }
            // Full: it keeps its reservations, new ones go to a new session.
            shared.retired.store(true, Ordering::Release);
        }
        let shared = Arc::new(Shared {
            slot: Mutex::new(self.new_slot()?),
            retired: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            promised: AtomicUsize::new(sockets),
        });
        *current = Some(shared.clone());
        Ok(shared)
    }

    /// Reserves `count` ports (one when `count` is `None`) in the
    /// reservations' session, and reads each one's port.
    pub fn reserve(
        self: &Arc<Self>,
        ports: Option<&Candidates>,
        count: Option<u32>,
        strict: bool,
    ) -> (Outcome<Vec<Ticket>>, Vec<String>) {
        if let Err(failure) = self.check_process() {
            return (Err(failure), Vec::new());
        }
        // A count the component refuses anyway (0, above 64512) is left
        // for it to answer.
        let wanted = match count {
            None => 1,
            Some(count @ 1..=64_512) => count as usize,
            Some(_) => 0,
        };
        let shared = match self.reserving(wanted) {
            Ok(shared) => shared,
            Err(failure) => return (Err(failure), Vec::new()),
        };
        let mut slot = shared.lock();
        let session = &mut slot.slot.session;
        // Each one is a ticket as soon as its port is known: one dropped on
        // a later failure is released like any other (and its promise with it).
        let mut tickets = Vec::new();
        let outcome = self.runtime.block_on(async {
            let held = match count {
                None => flat(
                    session.reserve_port(ports, strict).await,
                    Failure::Component,
                )
                .map(|one| vec![one])?,
                Some(count) => flat(
                    session.reserve_ports(ports, count, strict).await,
                    Failure::Component,
                )?,
            };
            for reservation in held {
                let port = flat(
                    session.reservation_port(&reservation).await,
                    Failure::Reservation,
                )?;
                tickets.push(Ticket::new(port, reservation, &shared, self));
            }
            Ok(())
        });
        let warnings = slot.slot.warnings();
        drop(slot);
        shared.promised.fetch_sub(
            wanted.saturating_sub(tickets.len()) * self.per_reservation,
            Ordering::AcqRel,
        );
        (outcome.map(|()| tickets), warnings)
    }

    /// Ends `reservation` in `shared`, the session that holds it. With
    /// `take`, its listening socket is handed over first, as a descriptor
    /// of this process.
    fn finish(
        &self,
        shared: &Shared,
        reservation: port_host::Reservation,
        take: Option<u16>,
    ) -> Outcome<Option<TakenSocket>> {
        let mut slot = shared.lock();
        if let Some(why) = slot.slot.session.ended() {
            // The store is gone, and every port it held with it.
            return match take {
                Some(_) => Err(Failure::Host(wasmtime::format_err!(
                    "this reservation's session has ended: {why}"
                ))),
                None => Ok(None),
            };
        }
        let session = &mut slot.slot.session;
        let outcome = self.runtime.block_on(async {
            let mut taken: Option<Result<TakenSocket, String>> = None;
            if let Some(port) = take {
                let socket = flat(
                    session.take_socket(&reservation).await,
                    Failure::Reservation,
                )?;
                // The listener is still open in the store's table: a
                // duplicate made now keeps the port held without a gap.
                #[cfg(unix)]
                {
                    taken = Some(fd::listener_on_loopback(port));
                }
                // Never asked for here (`Ticket::end` refuses first); were
                // it, the socket would be closed and the port freed.
                #[cfg(not(unix))]
                {
                    taken = SOCKET_UNSUPPORTED.map(|why| Err(format!("{why} (port {port})")));
                }
                session.close_socket(socket).map_err(Failure::Host)?;
            }
            session
                .drop_reservation(reservation)
                .await
                .map_err(Failure::Host)?;
            taken.transpose().map_err(Failure::Socket)
        });
        // A release has no answer to carry a warning; drained all the same.
        slot.slot.warnings();
        outcome
    }

    /// Hands `reservation` to the release thread. Marked GIL-safe: the
    /// channel's send neither calls the component nor waits for a call.
    fn release_later(self: &Arc<Self>, shared: Arc<Shared>, reservation: port_host::Reservation) {
        let release = Release {
            shared,
            reservation,
            host: self.clone(),
        };
        // Should the release thread be gone, the port stays held until its
        // session ends, when the last reservation and the host are gone.
        drop(self.releases.send(release));
    }
}

/// The release thread: ends each reservation it is handed, in turn. It is
/// no thread of a runtime, so the host may end here too (its runtime with
/// it) when a reservation's was its last reference.
fn release_all(jobs: Receiver<Release>) {
    for Release {
        shared,
        reservation,
        host,
    } in jobs
    {
        let _ = host.finish(&shared, reservation, None);
        drop(shared);
        drop(host);
    }
}

const HELD: u8 = 0;
const RELEASED: u8 = 1;
const TAKEN: u8 = 2;

/// A port held by a listening socket in its host's reservations' session,
/// until it is released, its socket taken, or it is dropped (then its host's
/// release thread releases it).
pub struct Ticket {
    port: u16,
    pid: u32,
    /// `HELD`, `RELEASED` or `TAKEN`: read without a lock.
    state: AtomicU8,
    /// The component's handle while held; locked only to end it.
    handle: Mutex<Option<port_host::Reservation>>,
    shared: Arc<Shared>,
    host: Arc<Inner>,
}

/// Where a reservation stands, as this process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Held,
    Released,
    SocketTaken,
    /// Its session was stopped, which freed every port the session held.
    Stopped,
    /// Held by the process that made it, before a fork: not this one.
    HeldElsewhere(u32),
}

impl Ticket {
    fn new(
        port: u16,
        reservation: port_host::Reservation,
        shared: &Arc<Shared>,
        host: &Arc<Inner>,
    ) -> Self {
        Ticket {
            port,
            pid: host.pid,
            state: AtomicU8::new(HELD),
            handle: Mutex::new(Some(reservation)),
            shared: shared.clone(),
            host: host.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Marked GIL-safe: atomics only, no lock, no call.
    pub fn standing(&self) -> Standing {
        match self.state.load(Ordering::Acquire) {
            TAKEN => Standing::SocketTaken,
            RELEASED => Standing::Released,
            _ if self.shared.ended.load(Ordering::Acquire) => Standing::Stopped,
            _ if self.pid != this_process() => Standing::HeldElsewhere(self.pid),
            _ => Standing::Held,
        }
    }

    /// Ends the hold, in the session that holds it; `take` also hands the
    /// listening socket over, as a descriptor of this process. Calls the
    /// component: never with the GIL held. After a fork the parent's hold is
    /// not this process's to end: releasing does nothing, taking is refused.
    pub fn end(&self, take: bool) -> Outcome<Option<TakenSocket>> {
        if let (true, Some(why)) = (take, SOCKET_UNSUPPORTED) {
            // Refused before anything changes: the port stays held.
            return Err(Failure::Unsupported(why));
        }
        if self.pid != this_process() {
            return if take {
                Err(Failure::Fork(self.pid))
            } else {
                Ok(None)
            };
        }
        let mut handle = lock(&self.handle);
        let Some(reservation) = handle.take() else {
            return match (take, self.state.load(Ordering::Acquire)) {
                (false, _) => Ok(None),
                (true, TAKEN) => Err(Failure::Reservation(ReservationError::SocketTaken)),
                (true, _) => Err(Failure::Reservation(ReservationError::Released)),
            };
        };
        // Released, taken or gone with its session: no longer the
        // session's socket either way.
        self.shared
            .promised
            .fetch_sub(self.host.per_reservation, Ordering::AcqRel);
        let outcome = self
            .host
            .finish(&self.shared, reservation, take.then_some(self.port));
        let state = if take && outcome.is_ok() {
            TAKEN
        } else {
            RELEASED
        };
        self.state.store(state, Ordering::Release);
        outcome
    }

    /// The socket taken was closed before anyone had it: the port is free.
    pub fn socket_lost(&self) {
        self.state.store(RELEASED, Ordering::Release);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.pid != this_process() {
            // The parent's store and engine: never run their destructors here.
            std::mem::forget(self.shared.clone());
            std::mem::forget(self.host.clone());
            return;
        }
        // Marked GIL-safe: a finaliser may run it, so the release itself is
        // the release thread's.
        let held = self
            .handle
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(reservation) = held {
            self.shared
                .promised
                .fetch_sub(self.host.per_reservation, Ordering::AcqRel);
            self.host.release_later(self.shared.clone(), reservation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use port_host::StoreBounds;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    fn host(max_sockets: usize) -> Arc<Inner> {
        let limits = Limits::default()
            .with_sessions(64)
            .with_store(StoreBounds::default().with_resources(max_sockets));
        Arc::new(Inner::new(NetworkPolicy::loopback(), limits).unwrap())
    }

    /// `count` consecutive ports free now on 127.0.0.1, outside the
    /// ephemeral range, and never a block another test here was given.
    fn free_block(count: u16) -> u16 {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = 10_000 + (this_process() as usize * 7_919) % 10_000;
        loop {
            let start = base + NEXT.fetch_add(1, Ordering::Relaxed) * 32;
            assert!(start + 32 < 32_768, "no free block of ports below 32768");
            let start = start as u16;
            if (start..start + count).all(bindable) {
                return start;
            }
        }
    }

    fn range(start: u16, count: u16) -> Candidates {
        Candidates::Range(port_host::PortRange {
            start: u32::from(start),
            end: u32::from(start + count),
            step: 1,
        })
    }

    fn reserve(inner: &Arc<Inner>, ports: &Candidates, count: u32) -> Vec<Ticket> {
        let (outcome, _) = inner.reserve(Some(ports), Some(count), true);
        outcome.map_err(|f| format!("{f:?}")).unwrap()
    }

    fn bindable(port: u16) -> bool {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
    }

    /// Polls until `done`, for at most a minute (a bound, not a timing).
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_dropped_ticket_is_released_by_the_release_thread() {
        let inner = host(66_000);
        let start = free_block(4);
        let tickets = reserve(&inner, &range(start, 4), 2);
        let ports: Vec<u16> = tickets.iter().map(Ticket::port).collect();
        assert!(ports.iter().all(|&port| !bindable(port)));
        let shared = tickets[0].shared.clone();
        assert_eq!(
            shared.promised.load(Ordering::Acquire),
            2 * inner.per_reservation
        );
        drop(tickets);
        assert_eq!(shared.promised.load(Ordering::Acquire), 0);
        assert!(eventually(|| ports.iter().all(|&port| bindable(port))));
    }

    #[test]
    fn the_last_ticket_ends_its_host_on_the_release_thread() {
        let inner = host(66_000);
        let start = free_block(4);
        let ticket = reserve(&inner, &range(start, 4), 1).remove(0);
        let weak = Arc::downgrade(&inner);
        drop(inner);
        drop(ticket);
        // The release thread held the last reference: the host (its
        // runtime too) ended there, and the port is free.
        assert!(eventually(|| weak.strong_count() == 0));
        assert!(eventually(|| bindable(start)));
    }

    #[test]
    fn standing_is_read_while_a_call_holds_the_session() {
        let inner = host(66_000);
        let start = free_block(4);
        let ticket = reserve(&inner, &range(start, 4), 1).remove(0);
        let busy = ticket.shared.lock();
        // A reader that waited for that lock would never come back here.
        assert_eq!(ticket.standing(), Standing::Held);
        drop(busy);
        assert!(ticket.end(false).unwrap().is_none());
        assert_eq!(ticket.standing(), Standing::Released);
        assert!(bindable(ticket.port()));
        // Windows refuses a socket before it looks at the reservation.
        assert!(match ticket.end(true) {
            Err(Failure::Reservation(ReservationError::Released)) => cfg!(unix),
            Err(Failure::Unsupported(_)) => cfg!(not(unix)),
            _ => false,
        });
    }

    #[cfg(unix)]
    #[test]
    fn a_taken_socket_is_this_process_descriptor() {
        let inner = host(66_000);
        let start = free_block(4);
        let ticket = reserve(&inner, &range(start, 4), 1).remove(0);
        let fd = ticket.end(true).unwrap().expect("a descriptor");
        assert_eq!(ticket.standing(), Standing::SocketTaken);
        assert!(!bindable(ticket.port()));
        drop(fd);
        assert!(bindable(ticket.port()));
        assert!(matches!(
            ticket.end(true),
            Err(Failure::Reservation(ReservationError::SocketTaken))
        ));
    }

    #[test]
    fn a_full_session_is_retired_and_keeps_its_reservations() {
        let inner = host(12);
        // As many as a session of 12 sockets holds: 8 on Linux, 2 where a
        // reservation keeps wildcard guards too.
        let fits = (12 - inner.overhead) / inner.per_reservation;
        let start = free_block(16);
        let first = reserve(&inner, &range(start, 16), fits as u32);
        let second = reserve(&inner, &range(start, 16), fits as u32);
        assert!(!Arc::ptr_eq(&first[0].shared, &second[0].shared));
        assert!(first[0].shared.retired.load(Ordering::Acquire));
        assert!(
            first
                .iter()
                .chain(&second)
                .all(|t| t.standing() == Standing::Held)
        );
        let (refused, _) = inner.reserve(Some(&range(start, 16)), Some(fits as u32 + 1), true);
        assert!(matches!(
            refused,
            Err(Failure::Component(ErrorCode::InvalidArgument(_)))
        ));
    }

    #[test]
    fn a_stopped_session_reads_stopped_without_a_call() {
        let inner = host(66_000);
        let start = free_block(4);
        let ticket = reserve(&inner, &range(start, 4), 1).remove(0);
        // The session is stopped as a deadline stops it: its call dropped
        // midway (a million failed binds yield at the first epoch tick).
        let busy = TcpListener::bind(("127.0.0.1", start + 1)).unwrap();
        let long = Candidates::Explicit(vec![start + 1; 1 << 20]);
        let mut slot = ticket.shared.lock();
        let stop = inner.runtime.block_on(async {
            let call = slot.slot.session.get_free_port(Some(&long), true);
            tokio::time::timeout(Duration::from_millis(1), call).await
        });
        assert!(stop.is_err());
        drop(slot);
        drop(busy);
        assert_eq!(ticket.standing(), Standing::Stopped);
        assert!(bindable(ticket.port()));
        assert!(match ticket.end(true) {
            Err(Failure::Host(_)) => cfg!(unix),
            Err(Failure::Unsupported(_)) => cfg!(not(unix)),
            _ => false,
        });
    }

    /// Windows: no socket is taken, and asking changes nothing.
    #[cfg(not(unix))]
    #[test]
    fn a_socket_is_refused_and_the_port_stays_held() {
        let inner = host(66_000);
        let start = free_block(4);
        let ticket = reserve(&inner, &range(start, 4), 1).remove(0);
        assert!(matches!(ticket.end(true), Err(Failure::Unsupported(_))));
        assert_eq!(ticket.standing(), Standing::Held);
        assert!(!bindable(ticket.port()));
        assert!(ticket.end(false).unwrap().is_none());
        assert!(bindable(ticket.port()));
    }

    #[test]
    fn idle_sessions_are_kept_up_to_the_pool_size() {
        let inner = host(66_000);
        let start = free_block(1);
        let (outcome, _) = inner.query(async |s| s.is_free_port(start).await);
        assert!(matches!(outcome, Ok(Ok(true))));
        assert_eq!(lock(&inner.idle).len(), 1);
        // A port of its own for each thread: two probes of one port at
        // once may see each other where the OS's binds conflict without
        // SO_REUSEADDR (Windows: wasmtime-wasi sets none there).
        let ports = free_block(IDLE_SESSIONS as u16 + 4);
        let threads: Vec<_> = (0..IDLE_SESSIONS as u16 + 4)
            .map(|i| {
                let inner = inner.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let port = ports + i;
                        let (outcome, _) = inner.query(async |s| s.is_free_port(port).await);
                        assert!(matches!(outcome, Ok(Ok(true))));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!((1..=IDLE_SESSIONS).contains(&lock(&inner.idle).len()));
    }
}
