//! A session for async callers: [`Session`](crate::Session)'s twin, call for
//! call. What differs is said once, here: every call runs with `call_async`
//! under a tokio timeout, so its deadline covers host calls (a guest blocked
//! on a socket) as well as guest code, and a spinning guest yields at every
//! epoch tick, so it holds no worker thread and the timeout gets its turn.

use crate::exports::{Exports, Reservation};
use crate::host::Admission;
use crate::sandbox::{self, Limits, State};
use crate::{Candidates, ErrorCode, PortStatus, ReservationError};
use wasmtime::component::Resource;
use wasmtime::{Result, Store, bail};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// One store and one instance for an async caller. After a call runs past
/// its deadline the session is finished: every later call is an error that
/// says so. Other sessions and the host carry on.
pub struct AsyncSession {
    store: Store<State>,
    exports: Exports,
    limits: Limits,
    stderr: Option<MemoryOutputPipe>,
    ended: Option<String>,
    _admission: Admission,
}

impl AsyncSession {
    pub(crate) fn new(
        store: Store<State>,
        exports: Exports,
        limits: Limits,
        stderr: Option<MemoryOutputPipe>,
        admission: Admission,
    ) -> Self {
        AsyncSession {
            store,
            exports,
            limits,
            stderr,
            ended: None,
            _admission: admission,
        }
    }

    /// `is-free-port`.
    pub async fn is_free_port(&mut self, port: u16) -> Result<Result<bool, ErrorCode>> {
        self.call(async |exports, store| {
            Ok(exports.is_free_port.call_async(store, (port,)).await?.0)
        })
        .await
    }

    /// `get-free-port`.
    pub async fn get_free_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<u16, ErrorCode>> {
        self.call(async |exports, store| {
            let func = exports.get_free_port(store)?;
            Ok(func.call_async(store, (ports, strict)).await?.0)
        })
        .await
    }

    /// `reserve-port`: the first free port among `ports`, held.
    pub async fn reserve_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<Reservation, ErrorCode>> {
        self.call(async |exports, store| {
            let func = exports.reserve_port(store)?;
            Ok(func
                .call_async(store, (ports, strict))
                .await?
                .0
                .map(Reservation))
        })
        .await
    }

    /// `get-free-ports`: `count` distinct free ports among `ports`, in order.
    pub async fn get_free_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<u16>, ErrorCode>> {
        self.call(async |exports, store| {
            let func = exports.get_free_ports(store)?;
            Ok(func.call_async(store, (ports, count, strict)).await?.0)
        })
        .await
    }

    /// `reserve-ports`: `count` ports held, or none at all.
    pub async fn reserve_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<Reservation>, ErrorCode>> {
        self.call(async |exports, store| {
            let func = exports.reserve_ports(store)?;
            let held = func.call_async(store, (ports, count, strict)).await?.0;
            Ok(held.map(|held| held.into_iter().map(Reservation).collect()))
        })
        .await
    }

    /// `reservation.port`.
    pub async fn reservation_port(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<u16, ReservationError>> {
        let handle = reservation.0;
        self.call(async |exports, store| Ok(exports.port.call_async(store, (handle,)).await?.0))
            .await
    }

    /// `reservation.take-socket`: the listening socket, now the host's, in
    /// this store's resource table. Close it with [`AsyncSession::close_socket`].
    pub async fn take_socket(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<Resource<TcpSocket>, ReservationError>> {
        let handle = reservation.0;
        self.call(async |exports, store| {
            Ok(exports.take_socket.call_async(store, (handle,)).await?.0)
        })
        .await
    }

    /// `reservation.release`: the port is free again when this returns `Ok`.
    pub async fn release(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<(), ReservationError>> {
        let handle = reservation.0;
        self.call(async |exports, store| Ok(exports.release.call_async(store, (handle,)).await?.0))
            .await
    }

    /// Drops the handle; the guest closes the socket if it still holds one.
    pub async fn drop_reservation(&mut self, reservation: Reservation) -> Result<()> {
        self.call(async |_, store| reservation.0.resource_drop_async(store).await)
            .await
    }

    /// Closes a socket [`AsyncSession::take_socket`] handed over.
    pub fn close_socket(&mut self, socket: Resource<TcpSocket>) -> Result<()> {
        self.store.data_mut().table().delete(socket)?;
        Ok(())
    }

    /// `probe-port`: what a bind on each loopback family finds.
    pub async fn probe_port(&mut self, port: u16) -> Result<Result<PortStatus, ErrorCode>> {
        self.call(async |exports, store| Ok(exports.probe_port.call_async(store, (port,)).await?.0))
            .await
    }

    /// What the guest wrote to stderr so far, if the session captures it.
    pub fn captured_stderr(&self) -> Option<String> {
        self.stderr
            .as_ref()
            .map(|pipe| String::from_utf8_lossy(&pipe.contents()).into_owned())
    }

    /// Runs one export under the session's deadline. A call cut off midway
    /// leaves the instance in no state to be entered again, so the session
    /// ends with it.
    async fn call<T>(
        &mut self,
        export: impl AsyncFnOnce(&Exports, &mut Store<State>) -> Result<T>,
    ) -> Result<T> {
        if let Some(why) = &self.ended {
            bail!("this session has ended: {why}");
        }
        let call = export(&self.exports, &mut self.store);
        match sandbox::within_deadline(&self.limits, call).await {
            Ok(result) => result,
            Err(why) => {
                self.ended = Some(why.clone());
                bail!("{why}")
            }
        }
    }
}
