//! Reservations from the host's side: typed calls on the component's
//! `reservation` resource and on `probe-port`. A reservation lives in its
//! session's store, so it is used through that session.

use crate::{Candidates, ErrorCode, PortStatus, ReservationError, Session};
use wasmtime::Result;
use wasmtime::component::{Resource, ResourceAny};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;

/// A port held by the session's instance. It is freed by [`Session::release`],
/// [`Session::drop_reservation`], or by dropping the session; a `Reservation`
/// value dropped on its own frees nothing until the session goes.
#[derive(Debug)]
pub struct Reservation(ResourceAny);

impl Session {
    /// `reserve-port`: the first free port among `ports`, held.
    pub fn reserve_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<Reservation, ErrorCode>> {
        let held = self.call(|api, store| api.call_reserve_port(store, ports, strict))?;
        Ok(held.map(Reservation))
    }

    /// `reservation.port`.
    pub fn reservation_port(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<u16, ReservationError>> {
        self.call(|api, store| api.reservation().call_port(store, reservation.0))
    }

    /// `reservation.take-socket`: the listening socket, now the host's, in
    /// this store's resource table. Close it with [`Session::close_socket`].
    pub fn take_socket(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<Resource<TcpSocket>, ReservationError>> {
        self.call(|api, store| api.reservation().call_take_socket(store, reservation.0))
    }

    /// `reservation.release`: the port is free again when this returns `Ok`.
    pub fn release(&mut self, reservation: &Reservation) -> Result<Result<(), ReservationError>> {
        self.call(|api, store| api.reservation().call_release(store, reservation.0))
    }

    /// Drops the handle; the guest closes the socket if it still holds one.
    pub fn drop_reservation(&mut self, reservation: Reservation) -> Result<()> {
        self.call(|_, store| reservation.0.resource_drop(store))
    }

    /// Closes a socket [`Session::take_socket`] handed over.
    pub fn close_socket(&mut self, socket: Resource<TcpSocket>) -> Result<()> {
        self.store.data_mut().table.delete(socket)?;
        Ok(())
    }

    /// `probe-port`: what a bind on each loopback family finds.
    pub fn probe_port(&mut self, port: u16) -> Result<Result<PortStatus, ErrorCode>> {
        self.call(|api, store| api.call_probe_port(store, port))
    }
}
