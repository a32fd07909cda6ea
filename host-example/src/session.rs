//! A session for sync callers: [`AsyncSession`]'s calls, blocked on. It
//! shares that session's lifecycle whole: the same deadline, host calls
//! included, and the same end after a trap or a deadline.

use crate::{
    AsyncSession, Candidates, ErrorCode, PortStatus, Reservation, ReservationError, TakenSocket,
};
use std::mem::ManuallyDrop;
use std::thread;
use wasmtime::Result;

/// One store and one instance: what a single sync caller uses. The outer
/// error of each call is the host's (a trap, a deadline, a quota) and ends
/// the session; the inner one is the component's answer.
///
/// It works inside a tokio runtime too (each call then runs on a thread of
/// its own and blocks the calling worker); there an [`AsyncSession`] fits better.
///
/// Each session drives its calls on a current-thread tokio runtime of its
/// own, on the calling thread: its sockets are registered with that
/// runtime's reactor, so no other thread wakes for them, and the process
/// keeps no worker threads for sync calls. (wasmtime-wasi's shared runtime,
/// used before, has a worker per core; a warm reserve and release measured
/// 4 to 8% slower at the median there.) The deadline's timer runs on the
/// same runtime, driven while a call blocks on it. It costs the session the
/// reactor's descriptors (on Linux an epoll and an eventfd).
pub struct Session {
    // Dropped before the runtime its sockets are registered with (see Drop).
    session: ManuallyDrop<AsyncSession>,
    runtime: ManuallyDrop<tokio::runtime::Runtime>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: both are taken once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.session) };
        let runtime = unsafe { ManuallyDrop::take(&mut self.runtime) };
        // A runtime dropped the usual way blocks on its shutdown, which
        // tokio forbids inside another runtime's task: where a sync session
        // ends inside one (a handler that made it), nothing is left to wait
        // for anyway, its one thread being this one.
        runtime.shutdown_background();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Session").field(&self.session).finish()
    }
}

impl Session {
    /// A session made by `start` on a runtime of its own.
    pub(crate) fn start(start: impl AsyncFnOnce() -> Result<AsyncSession> + Send) -> Result<Self> {
        blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let session = runtime.block_on(start())?;
            Ok(Session {
                session: ManuallyDrop::new(session),
                runtime: ManuallyDrop::new(runtime),
            })
        })
    }

    /// `is-free-port`.
    pub fn is_free_port(&mut self, port: u16) -> Result<Result<bool, ErrorCode>> {
        self.block(async |s| s.is_free_port(port).await)
    }

    /// `get-free-port`.
    pub fn get_free_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<u16, ErrorCode>> {
        self.block(async |s| s.get_free_port(ports, strict).await)
    }

    /// `reserve-port`: the first free port among `ports`, held.
    pub fn reserve_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<Reservation, ErrorCode>> {
        self.block(async |s| s.reserve_port(ports, strict).await)
    }

    /// `get-free-ports`: `count` distinct free ports among `ports`, in order.
    pub fn get_free_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<u16>, ErrorCode>> {
        self.block(async |s| s.get_free_ports(ports, count, strict).await)
    }

    /// `reserve-ports`: `count` ports held, or none at all.
    pub fn reserve_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<Reservation>, ErrorCode>> {
        self.block(async |s| s.reserve_ports(ports, count, strict).await)
    }

    /// `reservation.port`.
    pub fn reservation_port(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<u16, ReservationError>> {
        self.block(async |s| s.reservation_port(reservation).await)
    }

    /// `reservation.take-socket`: the listening socket, now the host's, in
    /// this store's resource table. Close it with [`Session::close_socket`].
    pub fn take_socket(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<TakenSocket, ReservationError>> {
        self.block(async |s| s.take_socket(reservation).await)
    }

    /// `reservation.release`: the port is free again when this returns `Ok`.
    pub fn release(&mut self, reservation: &Reservation) -> Result<Result<(), ReservationError>> {
        self.block(async |s| s.release(reservation).await)
    }

    /// Drops the handle; the guest closes the socket if it still holds one.
    pub fn drop_reservation(&mut self, reservation: Reservation) -> Result<()> {
        self.block(async |s| s.drop_reservation(reservation).await)
    }

    /// `probe-port`: what a bind on each loopback family finds.
    pub fn probe_port(&mut self, port: u16) -> Result<Result<PortStatus, ErrorCode>> {
        self.block(async |s| s.probe_port(port).await)
    }

    /// Closes a socket [`Session::take_socket`] handed over; another
    /// session's is refused with [`ForeignHandle`](crate::ForeignHandle).
    pub fn close_socket(&mut self, socket: TakenSocket) -> Result<()> {
        self.session.close_socket(socket)
    }

    /// What the guest wrote to stderr and was not yet taken, if the session
    /// captures it.
    pub fn captured_stderr(&self) -> Option<String> {
        self.session.captured_stderr()
    }

    /// Like [`Session::captured_stderr`], and empties the capture (see
    /// [`AsyncSession::take_captured_stderr`]).
    pub fn take_captured_stderr(&self) -> Option<String> {
        self.session.take_captured_stderr()
    }

    /// Why the session has ended, or `None` while it can still be called.
    pub fn ended(&self) -> Option<&str> {
        self.session.ended()
    }

    /// Runs one async call to its end on the session's runtime, on this
    /// thread or, inside another tokio runtime (where blocking on one
    /// panics), on a thread of its own.
    fn block<R: Send>(&mut self, call: impl AsyncFnOnce(&mut AsyncSession) -> R + Send) -> R {
        let (session, runtime) = (&mut *self.session, &*self.runtime);
        blocking(move || runtime.block_on(call(session)))
    }
}

/// Runs `work` where no tokio runtime is current: here, or on a scoped
/// thread when this one is inside a runtime.
pub(crate) fn blocking<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    thread::scope(|scope| match scope.spawn(work).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
