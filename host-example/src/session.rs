//! A session for sync callers: one store and one instance, typed calls on
//! every export, reservations and the probe.

use crate::exports::{Exports, Reservation};
use crate::host::Admission;
use crate::sandbox::{self, Limits, State};
use crate::{Candidates, ErrorCode, PortStatus, ReservationError};
use std::thread;
use wasmtime::component::Resource;
use wasmtime::{Result, Store};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// One store and one instance: what a single caller uses. The outer error of
/// each call is the host's (a trap, a deadline, a quota); the inner one is the
/// component's answer.
pub struct Session {
    store: Store<State>,
    exports: Exports,
    limits: Limits,
    stderr: Option<MemoryOutputPipe>,
    _admission: Admission,
}

impl Session {
    pub(crate) fn new(
        store: Store<State>,
        exports: Exports,
        limits: Limits,
        stderr: Option<MemoryOutputPipe>,
        admission: Admission,
    ) -> Self {
        Session {
            store,
            exports,
            limits,
            stderr,
            _admission: admission,
        }
    }

    /// `is-free-port`.
    pub fn is_free_port(&mut self, port: u16) -> Result<Result<bool, ErrorCode>> {
        self.call(|exports, store| Ok(exports.is_free_port.call(store, (port,))?.0))
    }

    /// `get-free-port`.
    pub fn get_free_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<u16, ErrorCode>> {
        self.call(|exports, store| {
            let func = exports.get_free_port(store)?;
            Ok(func.call(store, (ports, strict))?.0)
        })
    }

    /// `reserve-port`: the first free port among `ports`, held.
    pub fn reserve_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<Reservation, ErrorCode>> {
        self.call(|exports, store| {
            let func = exports.reserve_port(store)?;
            Ok(func.call(store, (ports, strict))?.0.map(Reservation))
        })
    }

    /// `get-free-ports`: `count` distinct free ports among `ports`, in order.
    pub fn get_free_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<u16>, ErrorCode>> {
        self.call(|exports, store| {
            let func = exports.get_free_ports(store)?;
            Ok(func.call(store, (ports, count, strict))?.0)
        })
    }

    /// `reserve-ports`: `count` ports held, or none at all.
    pub fn reserve_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<Reservation>, ErrorCode>> {
        self.call(|exports, store| {
            let func = exports.reserve_ports(store)?;
            let held = func.call(store, (ports, count, strict))?.0;
            Ok(held.map(|held| held.into_iter().map(Reservation).collect()))
        })
    }

    /// `reservation.port`.
    pub fn reservation_port(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<u16, ReservationError>> {
        let handle = reservation.0;
        self.call(|exports, store| Ok(exports.port.call(store, (handle,))?.0))
    }

    /// `reservation.take-socket`: the listening socket, now the host's, in
    /// this store's resource table. Close it with [`Session::close_socket`].
    pub fn take_socket(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<Resource<TcpSocket>, ReservationError>> {
        let handle = reservation.0;
        self.call(|exports, store| Ok(exports.take_socket.call(store, (handle,))?.0))
    }

    /// `reservation.release`: the port is free again when this returns `Ok`.
    pub fn release(&mut self, reservation: &Reservation) -> Result<Result<(), ReservationError>> {
        let handle = reservation.0;
        self.call(|exports, store| Ok(exports.release.call(store, (handle,))?.0))
    }

    /// Drops the handle; the guest closes the socket if it still holds one.
    pub fn drop_reservation(&mut self, reservation: Reservation) -> Result<()> {
        self.call(|_, store| reservation.0.resource_drop(store))
    }

    /// Closes a socket [`Session::take_socket`] handed over.
    pub fn close_socket(&mut self, socket: Resource<TcpSocket>) -> Result<()> {
        self.store.data_mut().table().delete(socket)?;
        Ok(())
    }

    /// `probe-port`: what a bind on each loopback family finds.
    pub fn probe_port(&mut self, port: u16) -> Result<Result<PortStatus, ErrorCode>> {
        self.call(|exports, store| Ok(exports.probe_port.call(store, (port,))?.0))
    }

    /// What the guest wrote to stderr so far, if the session captures it.
    pub fn captured_stderr(&self) -> Option<String> {
        self.stderr
            .as_ref()
            .map(|pipe| String::from_utf8_lossy(&pipe.contents()).into_owned())
    }

    /// Runs one export under a fresh deadline, off any tokio runtime.
    fn call<T: Send>(
        &mut self,
        export: impl FnOnce(&Exports, &mut Store<State>) -> Result<T> + Send,
    ) -> Result<T> {
        let Session {
            store,
            exports,
            limits,
            ..
        } = self;
        store.set_epoch_deadline(sandbox::deadline_ticks(limits.call_timeout));
        let result = outside_tokio(|| export(exports, store));
        result.map_err(|error| sandbox::explain(error, limits))
    }
}

/// Runs `work` where no tokio runtime is current. wasmtime-wasi's sync
/// bindings `block_on` the current runtime for every socket call, which
/// panics inside one (wasmtime#11339); on a thread of its own the call uses
/// wasmtime-wasi's private runtime, as it does outside tokio.
fn outside_tokio<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    thread::scope(|scope| match scope.spawn(work).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
