//! `Host`, `PortStatus` and the module-level functions (on a host made on
//! first use in each process). Every call runs with the GIL released.

use crate::convert::{candidates_of, count, family, port, port_block_of, truthy};
use crate::core::{Inner, component, lock, this_process};
use crate::errors::{ComponentError, answer, describe, invalid};
use crate::reservation::Reservation;
use port_host::{Limits, NetworkPolicy, StoreBounds};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A per-family answer of `probe_port`: `"free"`, `"in-use"`, `"denied"` or
/// `"unsupported"` for each of 127.0.0.1 and [::1].
#[pyclass(frozen, eq, get_all, module = "hbutils_port")]
#[derive(PartialEq, Eq)]
pub struct PortStatus {
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

/// An engine and the compiled component, with the host's network policy
/// and bounds; the module-level functions use one made on first use.
#[pyclass(frozen, module = "hbutils_port")]
pub struct Host {
    inner: Arc<Inner>,
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.inner.pid() != this_process() {
            std::mem::forget(self.inner.clone());
        }
    }
}

fn reservations(py: Python<'_>, held: Vec<crate::core::Ticket>) -> PyResult<Vec<Py<Reservation>>> {
    held.into_iter()
        .map(|ticket| Py::new(py, Reservation::new(ticket)))
        .collect()
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
            .map_err(|error| ComponentError::new_err(describe(&error)))?;
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
        let mut held = reservations(py, held)?;
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
        reservations(py, held)
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
        self.inner.pid()
    }

    fn __repr__(&self) -> String {
        let policy = self.inner.policy();
        let limits = self.inner.limits();
        format!(
            "<Host {policy:?} call_timeout={}s max_sessions={} max_sockets={}>",
            limits.call_timeout.as_secs_f64(),
            limits.sessions,
            limits.store.resources
        )
    }
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
        if inner.pid() == this_process() {
            return Ok(inner.clone());
        }
        // The parent's: leaked, never dropped here.
        std::mem::forget(default.take());
    }
    let inner = Inner::new(NetworkPolicy::loopback(), python_limits())
        .map_err(|error| ComponentError::new_err(describe(&error)))?;
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
pub fn default_host_object(py: Python<'_>) -> PyResult<Host> {
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
pub fn is_free_port(py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<bool> {
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
pub fn get_free_port(
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
pub fn get_free_ports(
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
pub fn reserve_port(
    py: Python<'_>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<Reservation>> {
    default_host_object(py)?.reserve_port(py, ports, strict)
}

/// Holds `count` ports at once, or none (all or nothing).
#[pyfunction]
#[pyo3(signature = (count, ports = None, strict = None), text_signature = "(count, ports=None, strict=True)")]
pub fn reserve_ports(
    py: Python<'_>,
    count: &Bound<'_, PyAny>,
    ports: Option<&Bound<'_, PyAny>>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Py<Reservation>>> {
    default_host_object(py)?.reserve_ports(py, count, ports, strict)
}

/// Why `port` reads busy or free: one bind per loopback family.
#[pyfunction]
pub fn probe_port(py: Python<'_>, port: &Bound<'_, PyAny>) -> PyResult<PortStatus> {
    default_host_object(py)?.probe_port(py, port)
}
