//! `hbutils_port._native`: the `port_host` library as a Python module.
//!
//! A thin skin: Python values become the host library's types and its
//! answers become Python values and exceptions. No port is searched here;
//! every rule is the component's. The rooms:
//!
//! - [`convert`]: Python values as ports, counts and candidates;
//! - [`errors`]: failures as Python exceptions, guest warnings as warnings;
//! - [`core`]: the host lifecycle a Python process needs (sessions lent to
//!   calls, the reservations' session, release, fork), in plain Rust;
//! - [`reservation`]: `Reservation`, a core reservation as a Python object;
//! - [`host`]: `Host`, `PortStatus` and the module-level functions;
//! - `fd` (Unix): a reservation's listening socket among this process's
//!   descriptors; on Windows `Reservation.socket()` raises
//!   `SocketNotSupported` instead.
//!
//! The GIL is never held during a call into the component, nor while
//! waiting for a lock a call may hold; a finaliser neither.

mod convert;
mod core;
mod errors;
#[cfg(unix)]
mod fd;
mod host;
mod reservation;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<host::Host>()?;
    m.add_class::<reservation::Reservation>()?;
    m.add_class::<host::PortStatus>()?;
    m.add_function(wrap_pyfunction!(host::is_free_port, m)?)?;
    m.add_function(wrap_pyfunction!(host::get_free_port, m)?)?;
    m.add_function(wrap_pyfunction!(host::get_free_ports, m)?)?;
    m.add_function(wrap_pyfunction!(host::reserve_port, m)?)?;
    m.add_function(wrap_pyfunction!(host::reserve_ports, m)?)?;
    m.add_function(wrap_pyfunction!(host::probe_port, m)?)?;
    m.add_function(wrap_pyfunction!(host::default_host_object, m)?)?;
    Ok(())
}
