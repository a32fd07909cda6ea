//! The core's failures as the Python exceptions a user catches, and the
//! guest's warnings as `UserWarning`s.

use crate::core::{Failure, Outcome, this_process};
use port_host::{ErrorCode, ReservationError};
use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use std::ffi::CString;

pyo3::import_exception!(hbutils_port._errors, NoFreePortError);
pyo3::import_exception!(hbutils_port._errors, PortAccessDenied);
pyo3::import_exception!(hbutils_port._errors, InvalidArgumentError);
pyo3::import_exception!(hbutils_port._errors, PortOutOfRangeError);
pyo3::import_exception!(hbutils_port._errors, SocketError);
pyo3::import_exception!(hbutils_port._errors, ReservationEnded);
pyo3::import_exception!(hbutils_port._errors, SocketNotSupported);
pyo3::import_exception!(hbutils_port._errors, ComponentError);
pyo3::import_exception!(hbutils_port._errors, ComponentTrapped);
pyo3::import_exception!(hbutils_port._errors, DeadlineExceeded);

pub fn invalid(message: String) -> PyErr {
    InvalidArgumentError::new_err(message)
}

pub fn out_of_range(message: String) -> PyErr {
    PortOutOfRangeError::new_err(message)
}

/// The host's explanation and, when it says more, the first line of the
/// original error (a trap's kind): one line, without the wasm backtrace the
/// causes between them carry.
pub fn describe(error: &wasmtime::Error) -> String {
    let top = error.to_string();
    let root = error.chain().last().map(|cause| cause.to_string());
    match root.as_deref().and_then(|root| root.lines().next()) {
        Some(root) if !root.is_empty() && !top.contains(root) => format!("{top}: {root}"),
        _ => top,
    }
}

/// Turns a failure into the Python exception a user catches.
pub fn raise(failure: Failure) -> PyErr {
    match failure {
        Failure::Component(ErrorCode::AccessDenied) => PortAccessDenied::new_err(
            "access denied: the host refused a loopback TCP socket, so the port's state is unknown",
        ),
        Failure::Component(ErrorCode::NoFreePort(message)) => NoFreePortError::new_err(message),
        Failure::Component(ErrorCode::InvalidArgument(message)) => {
            InvalidArgumentError::new_err(message)
        }
        Failure::Component(ErrorCode::Other(code)) => {
            SocketError::new_err(format!("the host's socket call failed: {code}"))
        }
        Failure::Reservation(ReservationError::Released) => {
            ReservationEnded::new_err("this reservation was released")
        }
        Failure::Reservation(ReservationError::SocketTaken) => {
            ReservationEnded::new_err("this reservation's socket was taken")
        }
        Failure::Fork(pid) => ComponentError::new_err(format!(
            "this object was made in process {pid}, before a fork; this process ({}) must make \
             its own Host (the module-level functions do so by themselves)",
            this_process()
        )),
        Failure::Socket(message) => SocketError::new_err(message),
        Failure::Unsupported(message) => SocketNotSupported::new_err(message),
        Failure::Host(error) => {
            let message = describe(&error);
            // The host's failures are types; no text is matched.
            if error
                .downcast_ref::<port_host::DeadlineExceeded>()
                .is_some()
            {
                DeadlineExceeded::new_err(message)
            } else if error.downcast_ref::<wasmtime::Trap>().is_some()
                || error.downcast_ref::<port_host::QuotaExceeded>().is_some()
            {
                ComponentTrapped::new_err(message)
            } else {
                ComponentError::new_err(message)
            }
        }
    }
}

/// Issues the guest's warnings as `UserWarning`s at the caller's line, then
/// hands back the answer.
pub fn answer<T>(py: Python<'_>, (outcome, warnings): (Outcome<T>, Vec<String>)) -> PyResult<T> {
    let category = py.get_type::<PyUserWarning>();
    for warning in warnings {
        let text = CString::new(warning.replace('\0', " ")).unwrap_or_default();
        PyErr::warn(py, &category, &text, 1)?;
    }
    outcome.map_err(raise)
}
