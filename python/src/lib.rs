//! `hbutils_port._native`: the `port_host` library as a Python module.
//!
//! A thin skin: Python values become the host library's types
//! ([`Candidates`], ports, counts) and its answers become Python values and
//! exceptions. No port is searched here; every rule is the component's.
//!
//! What the skin does own is the lifecycle a Python process needs:
//! - each `Host` keeps a few idle sessions and lends one to each call, so
//!   threads never share a store; the GIL is released for the whole call;
//! - reservations live in a session of their own (shared by the host's
//!   reservations), tied to it by an `Arc`, so a reservation outlives the
//!   call that made it and is released in the store that holds it;
//! - a session that ended (trap, deadline) is replaced, never reused; its
//!   captured stderr is drained after each call, so it never fills;
//! - every object remembers the process that made it: after `fork()` the
//!   child makes a host of its own and never touches the parent's engine,
//!   runtime, sessions or locks (it leaks them rather than run their
//!   destructors against threads that do not exist in the child).

use port_host::{
    AsyncSession, Candidates, ErrorCode, FamilyStatus, Limits, NetworkPolicy, PortBlock, PortHost,
    PortRange, ReservationError, Stderr, StoreBounds,
};
use pyo3::exceptions::{PyTypeError, PyUserWarning};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyRange};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod fd;

mod errors {
    pyo3::import_exception!(hbutils_port._errors, NoFreePortError);
    pyo3::import_exception!(hbutils_port._errors, PortAccessDenied);
    pyo3::import_exception!(hbutils_port._errors, InvalidArgumentError);
    pyo3::import_exception!(hbutils_port._errors, PortOutOfRangeError);
    pyo3::import_exception!(hbutils_port._errors, SocketError);
    pyo3::import_exception!(hbutils_port._errors, ReservationEnded);
    pyo3::import_exception!(hbutils_port._errors, ComponentError);
    pyo3::import_exception!(hbutils_port._errors, ComponentTrapped);
    pyo3::import_exception!(hbutils_port._errors, DeadlineExceeded);
}

/// Idle sessions a host keeps for the next calls; more are made while more
/// threads call at once, and dropped when they come back to a full pool.
const IDLE_SESSIONS: usize = 8;

/// The longest explicit candidate list taken (2 bytes each in the guest's
/// memory); a longer one is refused rather than risk the store's memory bound
/// stopping the session that holds the host's reservations.
const MAX_EXPLICIT: usize = 1 << 20;

/// The component's strict-fallback warning, and hbutils' words for it.
const COMPONENT_WARNING: &str = "no usable ports (>= 1024) were given, so strict mode is disabled";
const HBUTILS_WARNING: &str = "No usable ports provided, so strict mode will be disabled.";

fn this_process() -> u32 {
    std::process::id()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session; its captured stderr is drained after every call.
struct Slot {
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
/// reservations) once it ended; it lives on, through the
/// reservations' `Arc`s, until the last of them goes.
struct Shared {
    slot: Mutex<Slot>,
    retired: AtomicBool,
    /// Sockets promised to reservations: those held, and those a call in
    /// flight may take. Counted so that no call can run the session into
    /// its socket quota, whose trap would end it and free every port it holds.
    promised: AtomicUsize,
}

/// Live resources a session needs besides one per reservation: the
/// component's own (2, measured) and the probe's sockets during a search.
const SESSION_OVERHEAD: usize = 4;

/// What a call could not do: the host's failure (the session is gone) or the
/// component's answer.
enum Failure {
    Host(wasmtime::Error),
    Component(ErrorCode),
    Reservation(ReservationError),
    Fork(u32),
    Socket(String),
}

type Outcome<T> = Result<T, Failure>;

/// Reservations just made: the session that holds them, and each one's port.
type Held = (Arc<Shared>, Vec<(u16, port_host::Reservation)>);

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

// Fields drop in this order: the sessions, then the engine, and the runtime
// their sockets are registered with last.
struct Inner {
    idle: Mutex<Vec<Slot>>,
    reserving: Mutex<Option<Arc<Shared>>>,
    host: PortHost,
    runtime: tokio::runtime::Runtime,
    policy: NetworkPolicy,
    pid: u32,
}

impl Inner {
    fn new(policy: NetworkPolicy, limits: Limits) -> wasmtime::Result<Self> {
        // A runtime per host, not wasmtime-wasi's process-wide one: a forked
        // child must be able to make a working one, and its one worker
        // drives the timers the call deadline rests on.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hbutils-port")
            .enable_all()
            .build()?;
        Ok(Inner {
            pid: this_process(),
            runtime,
            host: PortHost::embedded_load_only(limits)?,
            policy,
            idle: Mutex::new(Vec::new()),
            reserving: Mutex::new(None),
        })
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
    fn query<T>(
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

    /// The session new reservations go to.
    /// The session `wanted` new reservations go to, with room for them
    /// promised: the current one while it has room, else a fresh one.
    fn reserving(&self, wanted: usize) -> Outcome<Arc<Shared>> {
        let quota = self.host.limits().store.resources;
        if wanted.saturating_add(SESSION_OVERHEAD) > quota {
            return Err(Failure::Component(ErrorCode::InvalidArgument(format!(
                "{wanted} reservations do not fit in this host's max_sockets={quota} \
                 (live sockets per session, {SESSION_OVERHEAD} of them the component's own)"
            ))));
        }
        let mut current = lock(&self.reserving);
        if let Some(shared) = current.as_ref()
            && !shared.retired.load(Ordering::Acquire)
        {
            let promised = shared.promised.load(Ordering::Acquire);
            if promised + wanted + SESSION_OVERHEAD <= quota {
                shared.promised.fetch_add(wanted, Ordering::AcqRel);
                return Ok(shared.clone());
            }
            // Full: it keeps its reservations, new ones go to a new session.
            shared.retired.store(true, Ordering::Release);
        }
        let shared = Arc::new(Shared {
            slot: Mutex::new(self.new_slot()?),
            retired: AtomicBool::new(false),
            promised: AtomicUsize::new(wanted),
        });
        *current = Some(shared.clone());
        Ok(shared)
    }

    /// Reserves `count` ports (one when `count` is `None`) in the
    /// reservations' session, and reads each one's port.
    fn reserve(
        &self,
        ports: Option<&Candidates>,
        count: Option<u32>,
        strict: bool,
    ) -> (Outcome<Held>, Vec<String>) {
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
        let mut slot = lock(&shared.slot);
        let session = &mut slot.session;
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
            let mut ported = Vec::with_capacity(held.len());
            for reservation in held {
                let port = flat(
                    session.reservation_port(&reservation).await,
                    Failure::Reservation,
                )?;
                ported.push((port, reservation));
            }
            Ok(ported)
        });
        let warnings = slot.warnings();
        if !slot.reusable() {
            shared.retired.store(true, Ordering::Release);
        }
        let taken = outcome.as_ref().map_or(0, Vec::len);
        shared
            .promised
            .fetch_sub(wanted.saturating_sub(taken), Ordering::AcqRel);
        drop(slot);
        (outcome.map(|held| (shared, held)), warnings)
    }
}

/// The host's explanation and, when it says more, the first line of the
/// original error (a trap's kind): one line, without the wasm backtrace the
/// causes between them carry.
fn describe(error: &wasmtime::Error) -> String {
    let top = error.to_string();
    let root = error.chain().last().map(|cause| cause.to_string());
    match root.as_deref().and_then(|root| root.lines().next()) {
        Some(root) if !root.is_empty() && !top.contains(root) => format!("{top}: {root}"),
        _ => top,
    }
}

/// Turns a failure into the Python exception a user catches.
fn raise(failure: Failure) -> PyErr {
    match failure {
        Failure::Component(ErrorCode::AccessDenied) => errors::PortAccessDenied::new_err(
            "access denied: the host refused a loopback TCP socket, so the port's state is unknown",
        ),
        Failure::Component(ErrorCode::NoFreePort(message)) => {
            errors::NoFreePortError::new_err(message)
        }
        Failure::Component(ErrorCode::InvalidArgument(message)) => {
            errors::InvalidArgumentError::new_err(message)
        }
        Failure::Component(ErrorCode::Other(code)) => {
            errors::SocketError::new_err(format!("the host's socket call failed: {code}"))
        }
        Failure::Reservation(ReservationError::Released) => {
            errors::ReservationEnded::new_err("this reservation was released")
        }
        Failure::Reservation(ReservationError::SocketTaken) => {
            errors::ReservationEnded::new_err("this reservation's socket was taken")
        }
        Failure::Fork(pid) => errors::ComponentError::new_err(format!(
            "this object was made in process {pid}, before a fork; this process ({}) must make \
             its own Host (the module-level functions do so by themselves)",
            this_process()
        )),
        Failure::Socket(message) => errors::SocketError::new_err(message),
        Failure::Host(error) => {
            let message = describe(&error);
            // The host's failures are types; no text is matched.
            if error
                .downcast_ref::<port_host::DeadlineExceeded>()
                .is_some()
            {
                errors::DeadlineExceeded::new_err(message)
            } else if error.downcast_ref::<wasmtime::Trap>().is_some()
                || error.downcast_ref::<port_host::QuotaExceeded>().is_some()
            {
                errors::ComponentTrapped::new_err(message)
            } else {
                errors::ComponentError::new_err(message)
            }
        }
    }
}

/// The component's own error, flattened into the call's outcome.
fn component<T>(
    (outcome, warnings): (Outcome<Result<T, ErrorCode>>, Vec<String>),
) -> (Outcome<T>, Vec<String>) {
    (
        outcome.and_then(|r| r.map_err(Failure::Component)),
        warnings,
    )
}

/// Issues the guest's warnings as `UserWarning`s at the caller's line, then
/// hands back the answer.
fn answer<T>(py: Python<'_>, (outcome, warnings): (Outcome<T>, Vec<String>)) -> PyResult<T> {
    let category = py.get_type::<PyUserWarning>();
    for warning in warnings {
        let text = CString::new(warning.replace('\0', " ")).unwrap_or_default();
        PyErr::warn(py, &category, &text, 1)?;
    }
    outcome.map_err(raise)
}

fn invalid(message: String) -> PyErr {
    errors::InvalidArgumentError::new_err(message)
}

fn out_of_range(message: String) -> PyErr {
    errors::PortOutOfRangeError::new_err(message)
}

/// An integer argument: `operator.index` semantics (a float, a string or
/// `None` is a `TypeError`, as in hbutils), but a bool is refused.
fn integer(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<i64>> {
    if value.is_instance_of::<PyBool>() {
        return Err(invalid(format!(
            "a bool is not a {what}: {}",
            value.repr()?
        )));
    }
    let index = value
        .py()
        .import("operator")?
        .call_method1("index", (value,))?;
    // Too large for i64: no port and no count either.
    Ok(index.extract::<i64>().ok())
}

/// A port argument: 0 to 65535 (the component answers port 0 itself).
fn port(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    match integer(value, "port")? {
        Some(n) => u16::try_from(n)
            .map_err(|_| out_of_range(format!("{n} is not a TCP port (1 to 65535)"))),
        None => Err(out_of_range(format!(
            "{} is not a TCP port (1 to 65535)",
            value.repr()?
        ))),
    }
}

fn count(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    match integer(value, "count")?.map(u32::try_from) {
        Some(Ok(n)) => Ok(n),
        _ => Err(invalid(format!(
            "count must be 1 to 64512, not {}",
            value.repr()?
        ))),
    }
}

/// `ports` as the host's candidates: a `range` stays a range (never
/// expanded), anything else iterable becomes a list.
fn candidates(ports: &Bound<'_, PyAny>) -> PyResult<Option<Candidates>> {
    if ports.is_none() {
        return Ok(None);
    }
    if let Ok(range) = ports.cast::<PyRange>() {
        let bound = |name: &str| -> PyResult<Option<i64>> {
            Ok(range.getattr(name)?.extract::<i64>().ok())
        };
        let (start, stop, step) = (bound("start")?, bound("stop")?, bound("step")?);
        let fits = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let converted = match (
            fits(start),
            fits(stop),
            step.and_then(|s| i32::try_from(s).ok()),
        ) {
            (Some(start), Some(end), Some(step)) => Some(PortRange { start, end, step }),
            _ => None,
        };
        return match converted {
            Some(range) => Ok(Some(Candidates::Range(range))),
            None => Err(invalid(format!(
                "{}: a range's bounds must be 0 to 65536 and its step fit in 32 bits",
                ports.repr()?
            ))),
        };
    }
    let mut list = Vec::new();
    for item in ports.try_iter()? {
        let item = item?;
        // hbutils keeps only candidates >= 1024, so a negative one is
        // dropped there without a word; one above 65535 fails its socket call.
        let n = match integer(&item, "port")? {
            Some(n) if n < 0 => continue,
            Some(n) => n,
            None if item.lt(0)? => continue,
            None => {
                return Err(out_of_range(format!(
                    "{} is not a TCP port (1 to 65535)",
                    item.repr()?
                )));
            }
        };
        let port = u16::try_from(n)
            .map_err(|_| out_of_range(format!("{n} is not a TCP port (1 to 65535)")))?;
        if list.len() == MAX_EXPLICIT {
            return Err(invalid(format!(
                "more than {MAX_EXPLICIT} candidates; pass a range instead"
            )));
        }
        list.push(port);
    }
    Ok(Some(Candidates::Explicit(list)))
}

/// A per-family answer of `probe_port`: `"free"`, `"in-use"`, `"denied"` or
/// `"unsupported"` for each of 127.0.0.1 and [::1].
#[pyclass(frozen, eq, get_all, module = "hbutils_port")]
#[derive(PartialEq, Eq)]
struct PortStatus {
    ipv4: &'static str,
    ipv6: &'static str,
}

#[pymethods]
impl PortStatus {
    /// Whether `is_free_port` reads this status as free.
    #[getter]
    fn is_free(&self) -> bool {
        self.ipv4 == "free" && matches!(self.ipv6, "free" | "unsupported")
    }

    fn __repr__(&self) -> String {
        format!("PortStatus(ipv4={:?}, ipv6={:?})", self.ipv4, self.ipv6)
    }
}

fn family(status: FamilyStatus) -> &'static str {
    match status {
        FamilyStatus::Free => "free",
        FamilyStatus::InUse => "in-use",
        FamilyStatus::Denied => "denied",
        FamilyStatus::Unsupported => "unsupported",
    }
}

/// A port held by a listening socket on 127.0.0.1 until it is released.
/// It keeps its session and its host (the runtime that session's sockets
/// are registered with) alive, even when the `Host` object is gone.
#[pyclass(frozen, module = "hbutils_port")]
struct Reservation {
    port: u16,
    pid: u32,
    held: Mutex<State>,
    shared: Arc<Shared>,
    host: Arc<Inner>,
}

/// Where a reservation stands.
enum State {
    Yes(port_host::Reservation),
    Released,
    SocketTaken,
}

impl Reservation {
    /// Ends the hold, in the session that holds it. `take` also hands the
    /// listening socket over, as a descriptor of this process.
    fn end(&self, take: bool) -> Outcome<Option<fd::Fd>> {
        if self.pid != this_process() {
            return Err(Failure::Fork(self.pid));
        }
        let mut held = lock(&self.held);
        let reservation = match std::mem::replace(&mut *held, State::Released) {
            State::Yes(reservation) => {
                // Released, taken or gone with its session: no longer the
                // session's socket either way.
                self.shared.promised.fetch_sub(1, Ordering::AcqRel);
                reservation
            }
            State::Released if take => {
                return Err(Failure::Reservation(ReservationError::Released));
            }
            State::SocketTaken if take => {
                *held = State::SocketTaken;
                return Err(Failure::Reservation(ReservationError::SocketTaken));
            }
            ended => {
                *held = ended;
                return Ok(None);
            }
        };
        let mut slot = lock(&self.shared.slot);
        let session = &mut slot.session;
        if session.ended().is_some() {
            // The store is gone, and every port it held with it.
            return if take {
                Err(Failure::Host(wasmtime::format_err!(
                    "this reservation's session has ended: {}",
                    session.ended().unwrap_or_default()
                )))
            } else {
                Ok(None)
            };
        }
        let port = self.port;
        let outcome = self.host.runtime.block_on(async {
            let mut taken = None;
            if take {
                let socket = flat(
                    session.take_socket(&reservation).await,
                    Failure::Reservation,
                )?;
                // The listener is still open in the store's table: a
                // duplicate made now keeps the port held without a gap.
                taken = Some(fd::listener_on_loopback(port));
                session.close_socket(socket).map_err(Failure::Host)?;
            }
            session
                .drop_reservation(reservation)
                .await
                .map_err(Failure::Host)?;
            taken.transpose().map_err(Failure::Socket)
        });
        if outcome.is_ok() && take {
            *held = State::SocketTaken;
        }
        outcome
    }
}

#[pymethods]
impl Reservation {
    /// The reserved port (still readable after the reservation ended).
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// Whether the port is still held by this reservation (not when its
    /// session was stopped, which frees every port the session held).
    #[getter]
    fn held(&self) -> bool {
        let held = lock(&self.held);
        matches!(*held, State::Yes(_)) && lock(&self.shared.slot).session.ended().is_none()
    }

    /// Frees the port at once. Calling it again does nothing.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.end(false)).map(drop).map_err(raise)
    }

    /// The listening socket itself, as a blocking `socket.socket` bound to
    /// 127.0.0.1:port, ready for `accept`. The port never passes through a
    /// free moment; the reservation ends and the socket is the caller's.
    fn socket<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let fd = py.detach(|| self.end(true)).map_err(raise)?;
        let fd =
            fd.ok_or_else(|| errors::ReservationEnded::new_err("this reservation was released"))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("fileno", fd.into_raw())?;
        let socket = py
            .import("socket")?
            .getattr("socket")?
            .call((), Some(&kwargs))?;
        socket.call_method1("setblocking", (true,))?;
        Ok(socket)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _kind: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match *lock(&self.held) {
            State::Yes(_) if lock(&self.shared.slot).session.ended().is_some() => {
                "freed when its session was stopped"
            }
            State::Yes(_) => "held",
            State::Released => "released",
            State::SocketTaken => "socket taken",
        };
        format!("<Reservation port={} {state}>", self.port)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.pid != this_process() {
            // The parent's store and engine: never run their destructors here.
            std::mem::forget(self.shared.clone());
            std::mem::forget(self.host.clone());
            return;
        }
        let _ = self.end(false);
    }
}

/// An engine and the compiled component, with the host's network policy
/// and bounds; the module-level functions use one made on first use.
#[pyclass(frozen, module = "hbutils_port")]
struct Host {
    inner: Arc<Inner>,
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.inner.pid != this_process() {
            std::mem::forget(self.inner.clone());
        }
    }
}

fn reservations(py: Python<'_>, inner: &Arc<Inner>, held: Held) -> PyResult<Vec<Py<Reservation>>> {
    let (shared, held) = held;
    held.into_iter()
        .map(|(port, reservation)| {
            Py::new(
                py,
                Reservation {
                    port,
                    pid: inner.pid,
                    shared: shared.clone(),
                    host: inner.clone(),
                    held: Mutex::new(State::Yes(reservation)),
                },
            )
        })
        .collect()
}

/// `strict` as hbutils reads it: by truth value, `True` when not given.
fn truthy(strict: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    strict.map_or(Ok(true), |strict| strict.is_truthy())
}

fn candidates_of(ports: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Candidates>> {
    ports.map_or(Ok(None), candidates)
}

#[pymethods]
impl Host {
    /// A host of its own: an engine, the compiled component and its
    /// sessions. Keyword arguments only:
    ///
    /// - `network`: `False` grants no socket at all (every call is
    ///   `PortAccessDenied`);
    /// - `connect`: also let the guest connect to loopback listeners (the
    ///   port component never does);
    /// - `port_block`: confine the guest to these ports, a `range` with step
    ///   1 or a `(start, end)` pair, end exclusive;
    /// - `call_timeout`: seconds any call may run (default 30);
    /// - `max_sessions`: sessions alive at once (default 256);
    /// - `max_sockets`: live sockets per session (default 66000: every port
    ///   a count can ask for; the process's open-file limit still applies).
    #[new]
    #[pyo3(signature = (*, network = true, connect = false, port_block = None, call_timeout = 30.0, max_sessions = 256, max_sockets = 66_000))]
    fn new(
        py: Python<'_>,
        network: bool,
        connect: bool,
        port_block: Option<&Bound<'_, PyAny>>,
        call_timeout: f64,
        max_sessions: usize,
        max_sockets: usize,
    ) -> PyResult<Self> {
        let mut policy = if network {
            NetworkPolicy::loopback()
        } else {
            NetworkPolicy::denied()
        };
        if connect {
            policy = policy.with_connect();
        }
        if let Some(block) = port_block {
            policy = policy.confined_to(port_block_of(block)?);
        }
        // NaN is refused too.
        if call_timeout.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(invalid(format!(
                "call_timeout must be more than 0 seconds, not {call_timeout}"
            )));
        }
        let call_timeout = Duration::try_from_secs_f64(call_timeout).unwrap_or(Duration::MAX);
        if max_sessions == 0 || max_sockets == 0 {
            return Err(invalid(
                "max_sessions and max_sockets must be at least 1".into(),
            ));
        }
        let limits = Limits::default()
            .with_sessions(max_sessions)
            .with_call_timeout(call_timeout)
            .with_store(StoreBounds::default().with_resources(max_sockets));
        let inner = py
            .detach(|| Inner::new(policy, limits))
            .map_err(|error| errors::ComponentError::new_err(describe(&error)))?;
        Ok(Host {
            inner: Arc::new(inner),
        })
    }

    /// hbutils' `is_free_port`: whether `port` can be bound on 127.0.0.1
    /// (and [::1], where the host has IPv6 loopback) right now.
    fn is_free_port(&self, py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<bool> {
        let port = self::port(port)?;
        let inner = &self.inner;
        let outcome = py.detach(|| inner.query(async |s| s.is_free_port(port).await));
        answer(py, component(outcome))
    }

    /// hbutils' `get_free_port`: the first free port >= 1024 among `ports`,
    /// in their order.
    #[pyo3(signature = (ports = None, strict = None), text_signature = "($self, ports=None, strict=True)")]
    fn get_free_port(
        &self,
        py: Python<'_>,
        ports: Option<&Bound<'_, PyAny>>,
        strict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u16> {
        let (ports, strict) = (candidates_of(ports)?, truthy(strict)?);
        let inner = &self.inner;
        let outcome =
            py.detach(|| inner.query(async |s| s.get_free_port(ports.as_ref(), strict).await));
        answer(py, component(outcome))
    }

    /// `count` distinct free ports among `ports`, in their order.
    #[pyo3(signature = (count, ports = None, strict = None), text_signature = "($self, count, ports=None, strict=True)")]
    fn get_free_ports(
        &self,
        py: Python<'_>,
        count: &Bound<'_, PyAny>,
        ports: Option<&Bound<'_, PyAny>>,
        strict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<u16>> {
        let count = self::count(count)?;
        let (ports, strict) = (candidates_of(ports)?, truthy(strict)?);
        let inner = &self.inner;
        let outcome = py.detach(|| {
            inner.query(async |s| s.get_free_ports(ports.as_ref(), count, strict).await)
        });
        answer(py, component(outcome))
    }

    /// Holds a free port among `ports` with a listening socket.
    #[pyo3(signature = (ports = None, strict = None), text_signature = "($self, ports=None, strict=True)")]
    fn reserve_port(
        &self,
        py: Python<'_>,
        ports: Option<&Bound<'_, PyAny>>,
        strict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Reservation>> {
        let (ports, strict) = (candidates_of(ports)?, truthy(strict)?);
        let inner = &self.inner;
        let held = answer(
            py,
            py.detach(|| inner.reserve(ports.as_ref(), None, strict)),
        )?;
        let mut held = reservations(py, inner, held)?;
        Ok(held.remove(0))
    }

    /// Holds `count` ports at once, or none.
    #[pyo3(signature = (count, ports = None, strict = None), text_signature = "($self, count, ports=None, strict=True)")]
    fn reserve_ports(
        &self,
        py: Python<'_>,
        count: &Bound<'_, PyAny>,
        ports: Option<&Bound<'_, PyAny>>,
        strict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<Reservation>>> {
        let count = self::count(count)?;
        let (ports, strict) = (candidates_of(ports)?, truthy(strict)?);
        let inner = &self.inner;
        let held = answer(
            py,
            py.detach(|| inner.reserve(ports.as_ref(), Some(count), strict)),
        )?;
        reservations(py, inner, held)
    }

    /// What a bind on 127.0.0.1 and on [::1] finds for `port`.
    fn probe_port(&self, py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<PortStatus> {
        let port = self::port(port)?;
        let inner = &self.inner;
        let outcome = py.detach(|| inner.query(async |s| s.probe_port(port).await));
        let status = answer(py, component(outcome))?;
        Ok(PortStatus {
            ipv4: family(status.ipv4),
            ipv6: family(status.ipv6),
        })
    }

    /// The process this host was made in; it works only there.
    #[getter]
    fn pid(&self) -> u32 {
        self.inner.pid
    }

    fn __repr__(&self) -> String {
        let policy = &self.inner.policy;
        let limits = self.inner.host.limits();
        format!(
            "<Host {policy:?} call_timeout={}s max_sessions={} max_sockets={}>",
            limits.call_timeout.as_secs_f64(),
            limits.sessions,
            limits.store.resources
        )
    }
}

fn port_block_of(block: &Bound<'_, PyAny>) -> PyResult<PortBlock> {
    let (start, end) = if let Ok(range) = block.cast::<PyRange>() {
        if range.getattr("step")?.extract::<i64>().ok() != Some(1) {
            return Err(invalid(format!(
                "{}: a port block is a range with step 1",
                block.repr()?
            )));
        }
        (range.getattr("start")?, range.getattr("stop")?)
    } else {
        let (start, end): (Bound<'_, PyAny>, Bound<'_, PyAny>) = block
            .extract()
            .map_err(|_| PyTypeError::new_err("port_block is a range or a (start, end) pair"))?;
        (start, end)
    };
    let bound = |value: &Bound<'_, PyAny>| -> PyResult<u32> {
        integer(value, "port")?
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{}: no port block",
                    block.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })
    };
    PortBlock::new(bound(&start)?..bound(&end)?).map_err(|bad| invalid(bad.to_string()))
}

/// The module-level functions' host: one per process, made on first use.
/// Only touched while attached to Python and never across a `detach`, so
/// no other thread holds this lock when `os.fork()` (which holds the GIL)
/// runs; the child sees the parent's pid in it and makes its own.
static DEFAULT: Mutex<Option<Arc<Inner>>> = Mutex::new(None);

/// `_attached` is the proof that the caller holds the GIL, which the rule
/// above rests on; the host is made without ever letting it go.
fn default_host(_attached: Python<'_>) -> PyResult<Arc<Inner>> {
    let mut default = lock(&DEFAULT);
    if let Some(inner) = default.as_ref() {
        if inner.pid == this_process() {
            return Ok(inner.clone());
        }
        // The parent's: leaked, never dropped here.
        std::mem::forget(default.take());
    }
    let inner = Inner::new(NetworkPolicy::loopback(), python_limits())
        .map_err(|error| errors::ComponentError::new_err(describe(&error)))?;
    let inner = Arc::new(inner);
    *default = Some(inner.clone());
    Ok(inner)
}

/// `Host()`'s defaults: the library's, but room for every port a count can
/// ask for (the process's open-file limit is the real bound) and for many
/// threads calling at once.
fn python_limits() -> Limits {
    Limits::default()
        .with_sessions(256)
        .with_store(StoreBounds::default().with_resources(66_000))
}

/// The process's default host (the one the module-level functions use),
/// made now if it was not.
#[pyfunction]
fn default_host_object(py: Python<'_>) -> PyResult<Host> {
    Ok(Host {
        inner: default_host(py)?,
    })
}

/// Whether `port` can be bound on 127.0.0.1 (and [::1], where the host has
/// IPv6 loopback) right now: hbutils' `is_free_port`. It binds and closes,
/// never connects or listens. `PortAccessDenied` when the OS refuses the bind
/// (ports below 1024 without privilege), `InvalidArgumentError` for port 0 or
/// a bool, `PortOutOfRangeError` below 0 or above 65535, `TypeError` for a
/// non-integer.
#[pyfunction]
fn is_free_port(py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<bool> {
    default_host_object(py)?.is_free_port(py, port)
}

/// The first free port >= 1024 among `ports`, in their order: hbutils'
/// `get_free_port`. A `range` is searched as a range, never expanded; any
/// other iterable is read into a list. With `strict` and no usable
/// candidate, warns (`UserWarning`, hbutils' words) and lets the OS pick;
/// with `strict` and none free, `NoFreePortError` (an `OSError`); without
/// it, a port the OS picks.
#[pyfunction]
#[pyo3(signature = (ports = None, strict = None), text_signature = "(ports=None, strict=True)")]
fn get_free_port(
    py: Python<'_>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<u16> {
    default_host_object(py)?.get_free_port(py, ports, strict)
}

/// `count` distinct free ports among `ports`, in their order; without
/// `strict` the OS fills what they lack. Nothing is held.
#[pyfunction]
#[pyo3(signature = (count, ports = None, strict = None), text_signature = "(count, ports=None, strict=True)")]
fn get_free_ports(
    py: Python<'_>,
    count: &Bound<'_, PyAny>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u16>> {
    default_host_object(py)?.get_free_ports(py, count, ports, strict)
}

/// Holds a free port among `ports` (`get_free_port`'s rules) with a listening
/// socket, so that nobody else can bind it until it is released. Successive
/// reservations continue after the previous one over the same candidates.
#[pyfunction]
#[pyo3(signature = (ports = None, strict = None), text_signature = "(ports=None, strict=True)")]
fn reserve_port(
    py: Python<'_>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<Reservation>> {
    default_host_object(py)?.reserve_port(py, ports, strict)
}

/// Holds `count` ports at once, or none (all or nothing).
#[pyfunction]
#[pyo3(signature = (count, ports = None, strict = None), text_signature = "(count, ports=None, strict=True)")]
fn reserve_ports(
    py: Python<'_>,
    count: &Bound<'_, PyAny>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Py<Reservation>>> {
    default_host_object(py)?.reserve_ports(py, count, ports, strict)
}

/// Why `port` reads busy or free: one bind per loopback family.
#[pyfunction]
fn probe_port(py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<PortStatus> {
    default_host_object(py)?.probe_port(py, port)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Host>()?;
    m.add_class::<Reservation>()?;
    m.add_class::<PortStatus>()?;
    m.add_function(wrap_pyfunction!(is_free_port, m)?)?;
    m.add_function(wrap_pyfunction!(get_free_port, m)?)?;
    m.add_function(wrap_pyfunction!(get_free_ports, m)?)?;
    m.add_function(wrap_pyfunction!(reserve_port, m)?)?;
    m.add_function(wrap_pyfunction!(reserve_ports, m)?)?;
    m.add_function(wrap_pyfunction!(probe_port, m)?)?;
    m.add_function(wrap_pyfunction!(default_host_object, m)?)?;
    Ok(())
}
