//! Which binds prove a port free, and which hold it: plain Rust over a
//! [`Binder`], so the same decisions run in the component (over
//! `wasi:sockets`) and natively against models of each OS's bind rules
//! (`tests/bind-models`).
//!
//! A bind on loopback is the probe everywhere: the kernel answers it from its
//! port table, without reaching the service behind the port. Linux then
//! refuses it beside a listener on loopback or on the wildcard address. BSD
//! (macOS) and Windows do not always: a bind of 127.0.0.1:P with
//! SO_REUSEADDR (which wasmtime-wasi sets on every OS but Windows) succeeds
//! beside the same user's listener on 0.0.0.0:P under XNU's rules, and a
//! plain bind of a specific address succeeds beside the same user's wildcard
//! bind under Windows'. So where the host grants it, the probe also binds
//! the wildcard addresses, without listening: an exact match with a wildcard
//! holder is refused on every OS. A host grants it where its OS needs it; one
//! that does not (Linux, where a wildcard bind would also see ports held on
//! other interfaces, which hbutils' localhost check does not) refuses the
//! first such bind, and the instance stops asking.
//!
//! A reservation holds the port the same way: its listener on 127.0.0.1, and,
//! where granted, a socket bound (never listening) on each wildcard address,
//! so that no later bind of the port, wildcard or specific, succeeds beside
//! it on those systems either.

use crate::search::Error;

/// Where a probe binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// 127.0.0.1
    Loopback4,
    /// `[::1]`
    Loopback6,
    /// 0.0.0.0
    Wildcard4,
    /// `[::]` (IPv6 only: wasmtime-wasi's IPv6 sockets are v6-only)
    Wildcard6,
}

/// Why a bind or a listen did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Someone holds the port there.
    InUse,
    /// The host has no such address family or address (no IPv6 loopback).
    NoFamily,
    /// The host's policy, or the OS, refused the socket call.
    Denied,
    /// Anything else, by its `wasi:sockets` error-code name.
    Other(String),
}

/// The socket calls the decisions are made of.
pub trait Binder {
    /// A bound socket; dropping it closes it.
    type Socket;
    /// A fresh TCP socket bound to `port` at `place` (port 0: the OS picks).
    fn bind(&mut self, place: Place, port: u16) -> Result<Self::Socket, Refusal>;
    /// The bound socket, listening.
    fn listen(&mut self, socket: Self::Socket) -> Result<Self::Socket, Refusal>;
    /// The port a socket is bound to.
    fn port_of(&mut self, socket: &Self::Socket) -> Result<u16, Refusal>;
}

/// Whether the host grants the wildcard probes. Learned at the first one
/// and kept for the instance: a policy does not change under it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wildcard {
    #[default]
    Unknown,
    Granted,
    Withheld,
}

/// What holding a port already bound came to: held, or not, with the bound
/// socket back when the port is held elsewhere (`None` when a rival's listen
/// won).
pub type Holding<S> = Result<Held<S>, Option<S>>;

/// A port held: the listener on 127.0.0.1 and the wildcard guards.
#[derive(Debug)]
pub struct Held<S> {
    pub port: u16,
    pub listener: S,
    pub guards: Vec<S>,
}

pub fn to_error(refusal: Refusal) -> Error {
    match refusal {
        Refusal::Denied => Error::AccessDenied,
        Refusal::InUse => Error::Other("address-in-use".into()),
        Refusal::NoFamily => Error::Other("address-not-bindable".into()),
        Refusal::Other(name) => Error::Other(name),
    }
}

/// hbutils' question: can `port` be bound on localhost right now? (Port 0 is
/// the caller's to refuse.)
pub fn is_free<B: Binder>(
    binder: &mut B,
    wildcard: &mut Wildcard,
    port: u16,
) -> Result<bool, Error> {
    // IPv4 first: it is the family every host has, and a port held there is
    // settled with one socket.
    match binder.bind(Place::Loopback4, port) {
        Ok(socket) => drop(socket),
        Err(Refusal::InUse) => return Ok(false),
        Err(refusal) => return Err(to_error(refusal)),
    }
    others_allow(binder, wildcard, port)
}

/// After a successful bind on 127.0.0.1: whether `[::1]` and, where granted,
/// the wildcard addresses are free too. The guards are bound and let go.
pub fn others_allow<B: Binder>(
    binder: &mut B,
    wildcard: &mut Wildcard,
    port: u16,
) -> Result<bool, Error> {
    if !ipv6_allows(binder, port)? {
        return Ok(false);
    }
    Ok(guards(binder, wildcard, port)?.is_some())
}

/// Whether `[::1]`:`port` is free; a host without IPv6 loopback leaves the
/// answer to IPv4 rather than calling every port busy.
pub fn ipv6_allows<B: Binder>(binder: &mut B, port: u16) -> Result<bool, Error> {
    match binder.bind(Place::Loopback6, port) {
        Ok(_) | Err(Refusal::NoFamily) => Ok(true),
        Err(Refusal::InUse) => Ok(false),
        Err(refusal) => Err(to_error(refusal)),
    }
}

/// Sockets bound on the wildcard addresses at `port`, where the host grants
/// them (none where it does not); `None` when someone holds the port there.
pub fn guards<B: Binder>(
    binder: &mut B,
    wildcard: &mut Wildcard,
    port: u16,
) -> Result<Option<Vec<B::Socket>>, Error> {
    let mut bound = Vec::new();
    for place in [Place::Wildcard4, Place::Wildcard6] {
        if *wildcard == Wildcard::Withheld {
            break;
        }
        match binder.bind(place, port) {
            Ok(socket) => bound.push(socket),
            Err(Refusal::InUse) => {
                *wildcard = Wildcard::Granted;
                return Ok(None);
            }
            Err(Refusal::NoFamily) if place == Place::Wildcard6 => {}
            // The first refusal of an instance is the host's policy saying it
            // does not grant wildcard binds: the loopback binds decide.
            Err(Refusal::Denied) if *wildcard == Wildcard::Unknown => {
                *wildcard = Wildcard::Withheld;
                break;
            }
            Err(refusal) => return Err(to_error(refusal)),
        }
        *wildcard = Wildcard::Granted;
    }
    Ok(Some(bound))
}

/// Holds `port`: bound on 127.0.0.1, checked on `[::1]`, guarded on the
/// wildcard addresses where granted, then listening. `None` when anyone
/// holds it, a rival reserving it this very moment included: of two listens
/// on one port, the OS lets one succeed.
pub fn hold<B: Binder>(
    binder: &mut B,
    wildcard: &mut Wildcard,
    port: u16,
) -> Result<Option<Held<B::Socket>>, Error> {
    let socket = match binder.bind(Place::Loopback4, port) {
        Ok(socket) => socket,
        Err(Refusal::InUse) => return Ok(None),
        Err(refusal) => return Err(to_error(refusal)),
    };
    Ok(hold_bound(binder, wildcard, port, socket)?.ok())
}

/// [`hold`] for a port already bound on 127.0.0.1 by `socket` (the OS's
/// choice, say). `[::1]` is checked before the listen, so that a port someone
/// holds there never sees our listener even for an instant: its owner may be
/// about to listen on it too. The guards come before the listen as well, so
/// the port is never listened on without them. When the port is held
/// elsewhere, the socket comes back still bound (the caller may keep it, so
/// that the OS does not pick that port again); `Err(None)` when a rival's
/// listen won.
pub fn hold_bound<B: Binder>(
    binder: &mut B,
    wildcard: &mut Wildcard,
    port: u16,
    socket: B::Socket,
) -> Result<Holding<B::Socket>, Error> {
    if !ipv6_allows(binder, port)? {
        return Ok(Err(Some(socket)));
    }
    let Some(guards) = guards(binder, wildcard, port)? else {
        return Ok(Err(Some(socket)));
    };
    match binder.listen(socket) {
        Ok(listener) => Ok(Ok(Held {
            port,
            listener,
            guards,
        })),
        Err(Refusal::InUse) => Ok(Err(None)),
        Err(refusal) => Err(to_error(refusal)),
    }
}
