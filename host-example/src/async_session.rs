//! A session for async callers, and the lifecycle both session kinds share:
//! [`Session`](crate::Session) makes these very calls, blocking on them.
//!
//! Every call runs with `call_async` under the host's call timeout, so its
//! deadline covers host calls (a guest blocked on a socket) as well as guest
//! code, and a spinning guest yields at every epoch tick. A call that fails,
//! runs past its deadline or is dropped midway leaves the instance in no
//! state to be entered again, so the session ends with it: its store (every
//! socket the guest held) and its place among the host's sessions are freed
//! at once, and each later call says why it ended.

use crate::admission::Admission;
use crate::bindings::PortUtilsPre;
use crate::bindings::exports::hbutils::network::port::Guest;
use crate::capture::StderrCapture;
use crate::deadline::within;
use crate::error::{ForeignHandle, SessionEnded, explain};
use crate::limits::Limits;
use crate::store::{State, Stderr, sandboxed_store};
use crate::{Candidates, ErrorCode, NetworkPolicy, PortStatus, ReservationError};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::{Resource, ResourceAny};
use wasmtime::{Engine, Result, Store};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;

/// A port held by a session's instance. It is freed by the session's
/// `release` or `drop_reservation`, or when the session ends; a `Reservation`
/// value dropped on its own frees nothing until then. It knows its session:
/// handed to another, it is refused with [`ForeignHandle`] and nothing runs.
#[derive(Debug)]
pub struct Reservation {
    handle: ResourceAny,
    session: SessionId,
}

/// The listening socket of a reservation, handed over by `take_socket`: it
/// lives in its session's resource table, and holds the port until it is
/// closed with that session's `close_socket` or the session ends. Like a
/// [`Reservation`], it is refused by any other session.
#[derive(Debug)]
pub struct TakenSocket {
    socket: Resource<TcpSocket>,
    session: SessionId,
}

/// Which session a handle belongs to: unique per process, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionId(u64);

impl SessionId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// One store and one instance for an async caller. The outer error of each
/// call is the host's (a trap, a deadline, a quota) and ends the session;
/// the inner one is the component's answer.
pub struct AsyncSession {
    id: SessionId,
    phase: Phase,
    limits: Limits,
    stderr: Option<StderrCapture>,
}

// One per session, never moved in bulk: boxing `Live` would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Live(Live),
    /// Why the session ended. A call in flight leaves this behind while it
    /// owns the store, in case its future is dropped.
    Ended(SessionEnded),
}

/// What an ended session gives back at once: the store (with every socket
/// its guest held) and the session's place among the host's.
struct Live {
    store: Store<State>,
    port: Guest,
    /// Held, never read: dropping it gives the place back.
    _admission: Admission,
}

impl std::fmt::Debug for AsyncSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSession")
            .field("id", &self.id.0)
            .field("ended", &self.ended())
            .field("limits", &self.limits)
            .field("captures_stderr", &self.stderr.is_some())
            .finish_non_exhaustive()
    }
}

impl AsyncSession {
    /// A fresh store under `network` and an instance of `pre` in it, made
    /// within `limits.call_timeout`, holding the place `admission` gave.
    pub(crate) async fn start(
        engine: &Engine,
        pre: &PortUtilsPre<State>,
        network: NetworkPolicy,
        stderr: Stderr,
        limits: Limits,
        admission: Admission,
    ) -> Result<Self> {
        let (mut store, stderr) = sandboxed_store(engine, network, stderr, &limits.store);
        let instance = match within(limits.call_timeout, pre.instantiate_async(&mut store)).await {
            Ok(Ok(instance)) => instance,
            Ok(Err(error)) => return Err(explain(error, &limits.store)),
            Err(late) => return Err(late.into()),
        };
        let port = instance.hbutils_network_port().clone();
        let live = Live {
            store,
            port,
            _admission: admission,
        };
        Ok(AsyncSession {
            id: SessionId::next(),
            phase: Phase::Live(live),
            limits,
            stderr,
        })
    }

    /// `is-free-port`.
    pub async fn is_free_port(&mut self, port: u16) -> Result<Result<bool, ErrorCode>> {
        self.call(async |g, store| g.call_is_free_port(store, port).await)
            .await
    }

    /// `get-free-port`.
    pub async fn get_free_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<u16, ErrorCode>> {
        self.call(async |g, store| g.call_get_free_port(store, ports, strict).await)
            .await
    }

    /// `reserve-port`: the first free port among `ports`, held.
    pub async fn reserve_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<Reservation, ErrorCode>> {
        let held = self
            .call(async |g, store| g.call_reserve_port(store, ports, strict).await)
            .await?;
        Ok(held.map(|handle| self.own(handle)))
    }

    /// `get-free-ports`: `count` distinct free ports among `ports`, in order.
    pub async fn get_free_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<u16>, ErrorCode>> {
        self.call(async |g, store| g.call_get_free_ports(store, ports, count, strict).await)
            .await
    }

    /// `reserve-ports`: `count` ports held, or none at all.
    pub async fn reserve_ports(
        &mut self,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Result<Vec<Reservation>, ErrorCode>> {
        let held = self
            .call(async |g, store| g.call_reserve_ports(store, ports, count, strict).await)
            .await?;
        Ok(held.map(|held| held.into_iter().map(|handle| self.own(handle)).collect()))
    }

    /// `reservation.port`.
    pub async fn reservation_port(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<u16, ReservationError>> {
        let handle = self.handle(reservation)?;
        self.call(async |g, store| g.reservation().call_port(store, handle).await)
            .await
    }

    /// `reservation.take-socket`: the listening socket, now the host's, in
    /// this store's resource table. Close it with [`AsyncSession::close_socket`].
    pub async fn take_socket(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<TakenSocket, ReservationError>> {
        let handle = self.handle(reservation)?;
        let taken = self
            .call(async |g, store| g.reservation().call_take_socket(store, handle).await)
            .await?;
        Ok(taken.map(|socket| TakenSocket {
            socket,
            session: self.id,
        }))
    }

    /// `reservation.release`: the port is free again when this returns `Ok`.
    pub async fn release(
        &mut self,
        reservation: &Reservation,
    ) -> Result<Result<(), ReservationError>> {
        let handle = self.handle(reservation)?;
        self.call(async |g, store| g.reservation().call_release(store, handle).await)
            .await
    }

    /// Drops the handle; the guest closes the socket if it still holds one.
    pub async fn drop_reservation(&mut self, reservation: Reservation) -> Result<()> {
        let handle = self.handle(&reservation)?;
        self.call(async |_, store| handle.resource_drop_async(store).await)
            .await
    }

    /// `probe-port`: what a bind on each loopback family finds.
    pub async fn probe_port(&mut self, port: u16) -> Result<Result<PortStatus, ErrorCode>> {
        self.call(async |g, store| g.call_probe_port(store, port).await)
            .await
    }

    /// Closes a socket [`AsyncSession::take_socket`] handed over: the port
    /// is free again when this returns `Ok`. Another session's socket is
    /// refused with [`ForeignHandle`], and nothing is closed.
    pub fn close_socket(&mut self, socket: TakenSocket) -> Result<()> {
        if socket.session != self.id {
            return Err(ForeignHandle.into());
        }
        let live = self.live()?;
        live.store.data_mut().table().delete(socket.socket)?;
        Ok(())
    }

    /// What the guest wrote to stderr and was not yet taken, if the session
    /// captures it (kept after the session ends).
    pub fn captured_stderr(&self) -> Option<String> {
        self.stderr.as_ref().map(StderrCapture::contents)
    }

    /// Like [`AsyncSession::captured_stderr`], and empties the capture: a
    /// long-lived session read this way never fills it. Up to 64 KiB wait
    /// to be taken; what the guest writes beyond that is lost, and counted
    /// by [`StderrCapture::dropped`].
    pub fn take_captured_stderr(&self) -> Option<String> {
        self.stderr.as_ref().map(StderrCapture::take)
    }

    /// Why the session has ended, or `None` while it can still be called.
    pub fn ended(&self) -> Option<&str> {
        match &self.phase {
            Phase::Live(_) => None,
            Phase::Ended(ended) => Some(&ended.cause),
        }
    }

    fn live(&mut self) -> Result<&mut Live> {
        match &mut self.phase {
            Phase::Live(live) => Ok(live),
            Phase::Ended(ended) => Err(ended.clone().into()),
        }
    }

    fn own(&self, handle: ResourceAny) -> Reservation {
        Reservation {
            handle,
            session: self.id,
        }
    }

    /// The reservation's handle in this session's store, or [`ForeignHandle`]
    /// for another session's: calling with it would end this session.
    fn handle(&self, reservation: &Reservation) -> Result<ResourceAny> {
        if reservation.session == self.id {
            Ok(reservation.handle)
        } else {
            Err(ForeignHandle.into())
        }
    }

    /// Runs one export under the call deadline; ends the session when the
    /// call does not come back with the component's answer.
    async fn call<T>(
        &mut self,
        export: impl AsyncFnOnce(&Guest, &mut Store<State>) -> Result<T>,
    ) -> Result<T> {
        // The store moves into this future: if the future is dropped midway,
        // the store goes with it, and the phase left behind says why.
        let cancelled = SessionEnded {
            cause: "a call was cancelled (its future dropped) before it finished".into(),
        };
        let mut live = match std::mem::replace(&mut self.phase, Phase::Ended(cancelled)) {
            Phase::Live(live) => live,
            Phase::Ended(ended) => {
                self.phase = Phase::Ended(ended.clone());
                return Err(ended.into());
            }
        };
        let outcome = within(
            self.limits.call_timeout,
            export(&live.port, &mut live.store),
        )
        .await;
        match outcome {
            Ok(Ok(value)) => {
                self.phase = Phase::Live(live);
                Ok(value)
            }
            Ok(Err(error)) => {
                let error = explain(error, &self.limits.store);
                self.phase = Phase::Ended(SessionEnded {
                    cause: error.to_string(),
                });
                Err(error)
            }
            Err(late) => {
                self.phase = Phase::Ended(SessionEnded {
                    cause: late.to_string(),
                });
                Err(late.into())
            }
        }
    }
}
