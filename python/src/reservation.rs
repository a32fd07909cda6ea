//! `Reservation`: a core [`Ticket`] as a Python object.
//!
//! Its state is read without a lock, so `held` and `repr` never wait for a
//! call; `release` and `socket` call the component with the GIL released;
//! collected, it hands its release to its host's release thread, so the
//! finaliser (which runs with the GIL held) makes no call either.

use crate::core::{Standing, TakenSocket, Ticket};
use crate::errors::{ReservationEnded, raise};
use pyo3::prelude::*;
#[cfg(unix)]
use pyo3::types::PyDict;

/// A port held by a listening socket on 127.0.0.1 until it is released.
/// It keeps its session and its host (the runtime that session's sockets
/// are registered with) alive, even when the `Host` object is gone.
#[pyclass(frozen, module = "hbutils_port")]
pub struct Reservation(Ticket);

impl Reservation {
    pub fn new(ticket: Ticket) -> Self {
        Reservation(ticket)
    }

    /// A `socket.socket` that owns the descriptor taken.
    #[cfg(unix)]
    fn adopt<'py>(&self, py: Python<'py>, fd: TakenSocket) -> PyResult<Bound<'py, PyAny>> {
        let adopt = || -> PyResult<Bound<'py, PyAny>> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("fileno", fd.as_raw())?;
            py.import("socket")?
                .getattr("socket")?
                .call((), Some(&kwargs))
        };
        let socket = match adopt() {
            // The socket object owns the descriptor now.
            Ok(socket) => {
                fd.into_raw();
                socket
            }
            // Closed here (`fd` drops), and the port with it.
            Err(error) => {
                self.0.socket_lost();
                return Err(error);
            }
        };
        socket.call_method1("setblocking", (true,))?;
        Ok(socket)
    }

    /// No socket is ever taken here.
    #[cfg(not(unix))]
    fn adopt<'py>(&self, _py: Python<'py>, taken: TakenSocket) -> PyResult<Bound<'py, PyAny>> {
        match taken {}
    }
}

#[pymethods]
impl Reservation {
    /// The reserved port (still readable after the reservation ended).
    #[getter]
    fn port(&self) -> u16 {
        self.0.port()
    }

    /// Whether this process holds the port through this reservation (not
    /// when its session was stopped, which frees every port the session
    /// held, and never in a child forked from the process that holds it).
    #[getter]
    fn held(&self) -> bool {
        self.0.standing() == Standing::Held
    }

    /// Frees the port at once. Calling it again does nothing, and so does
    /// calling it in a forked child (the parent holds the port, not it).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.0.end(false)).map(drop).map_err(raise)
    }

    /// The listening socket itself, as a blocking `socket.socket` bound to
    /// 127.0.0.1:port, ready for `accept`. The port never passes through a
    /// free moment; the reservation ends and the socket is the caller's.
    /// On Windows it raises `SocketNotSupported` and the reservation stays
    /// held (see `core::SOCKET_UNSUPPORTED`).
    fn socket<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let taken = py.detach(|| self.0.end(true)).map_err(raise)?;
        let taken =
            taken.ok_or_else(|| ReservationEnded::new_err("this reservation was released"))?;
        self.adopt(py, taken)
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
        let port = self.0.port();
        match self.0.standing() {
            Standing::Held => format!("<Reservation port={port} held>"),
            Standing::Released => format!("<Reservation port={port} released>"),
            Standing::SocketTaken => format!("<Reservation port={port} socket taken>"),
            Standing::Stopped => {
                format!("<Reservation port={port} freed when its session was stopped>")
            }
            Standing::HeldElsewhere(pid) => {
                format!("<Reservation port={port} held by process {pid}>")
            }
        }
    }
}
