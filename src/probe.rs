//! The `wasi:sockets` probe and reserver: the only code in the component that
//! talks to the host.
//!
//! A port is probed by binding a fresh TCP socket to it on loopback and closing
//! it again. A bind is answered by the kernel's port table alone, so it sees
//! listeners and plain bound sockets without ever reaching the service behind
//! them; a `connect` (what hbutils does) makes a live server accept a junk
//! connection and blocks for as long as its accept queue is full. The probe
//! never listens either: a listening probe can make the real owner's own
//! `listen` fail in that instant.
//!
//! A reservation is the one place that listens, because holding is its job:
//! only a listener makes the OS refuse every later bind of the port.
//!
//! A socket whose bind failed is kept for the next candidate: over a range
//! that is filling up, most candidates fail, and one `start-bind` is then all
//! a held port costs, where a fresh socket would add its creation and drop.

use crate::freeness::{self, Binder, Place, Refusal, Wildcard};
use crate::search::{Error, PortSet, Probe, Take};
use std::cell::{Cell, RefCell};
use wasi::io::poll::Pollable;
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;

/// How often the OS may pick a port that turns out to be held on [::1] before
/// the fallback gives up; each retry is a fresh ephemeral port, so a second
/// collision is already unlikely.
const OS_CHOICE_ATTEMPTS: usize = 8;

/// The first step of taking a port the OS picks: bound on 127.0.0.1:0. `None`
/// when the OS has no port left to bind: Linux's `bind` then fails with
/// address-in-use, BSD's with address-not-available.
fn bind_os_chosen(probe: &mut WasiProbe) -> Result<Option<(u16, TcpSocket)>, Error> {
    match probe.bind_loopback(IpAddressFamily::Ipv4, 0) {
        Ok(socket) => Ok(Some((port_of(&socket)?, socket))),
        Err(ErrorCode::AddressInUse | ErrorCode::AddressNotBindable) => Ok(None),
        Err(code) => Err(to_error(code)),
    }
}

thread_local! {
    /// The instance's network handle, fetched once: every host call a probe
    /// saves is time saved on each of the thousands of ports a search may try.
    static NETWORK: Network = instance_network();

    /// Ports this instance's live reservations hold, so that a search skips
    /// them without a socket call. (The OS would refuse them anyway.) A bit
    /// per port: constant time however many are held, no hashing code, and
    /// zeroed memory the component does not ship.
    static HELD: RefCell<PortSet> = const { RefCell::new(PortSet::new()) };

    /// Whether the host grants the wildcard probes (see `freeness`): learned
    /// at the first one, for the instance's life.
    static WILDCARD: Cell<Wildcard> = const { Cell::new(Wildcard::Unknown) };
}

/// Runs `decide` with the instance's knowledge of the wildcard grant.
fn with_wildcard<T>(decide: impl FnOnce(&mut Wildcard) -> T) -> T {
    let mut wildcard = WILDCARD.get();
    let answer = decide(&mut wildcard);
    WILDCARD.set(wildcard);
    answer
}

/// What one loopback bind found; mirrors the WIT `family-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStatus {
    Free,
    InUse,
    Denied,
    Unsupported,
}

/// Probes loopback ports, reusing the socket of a failed bind. One probe
/// lives for one call of an export: the spare sockets close with it.
#[derive(Default)]
pub struct WasiProbe {
    spare_ipv4: Option<TcpSocket>,
    spare_ipv6: Option<TcpSocket>,
}

impl WasiProbe {
    fn bind_loopback(
        &mut self,
        family: IpAddressFamily,
        port: u16,
    ) -> Result<TcpSocket, ErrorCode> {
        let spare = match family {
            IpAddressFamily::Ipv4 => &mut self.spare_ipv4,
            IpAddressFamily::Ipv6 => &mut self.spare_ipv6,
        };
        let (socket, reused) = match spare.take() {
            Some(socket) => (socket, true),
            None => (create_tcp_socket(family)?, false),
        };
        let address = socket_address(family, port, (127, 0, 0, 1), (0, 0, 0, 0, 0, 0, 0, 1));
        match NETWORK.with(|network| socket.start_bind(network, address)) {
            Ok(()) => {}
            // wasmtime leaves a socket whose `start-bind` failed unbound and
            // usable, so the next candidate can have it.
            Err(ErrorCode::AddressInUse) => {
                *spare = Some(socket);
                return Err(ErrorCode::AddressInUse);
            }
            // A host that does not is answered with a fresh socket; `spare`
            // is empty now, so this happens once.
            Err(ErrorCode::InvalidState) if reused => {
                drop(socket);
                return self.bind_loopback(family, port);
            }
            Err(code) => return Err(code),
        }
        // A bind that fails while it finishes leaves a socket in a state the
        // contract does not pin down, so it is not kept.
        finished(|| socket.finish_bind(), || socket.subscribe()).map(|()| socket)
    }

    /// What a bind of `port` on `family`'s loopback address finds.
    pub fn family_status(
        &mut self,
        family: IpAddressFamily,
        port: u16,
    ) -> Result<FamilyStatus, Error> {
        match self.bind_loopback(family, port) {
            Ok(_) => Ok(FamilyStatus::Free),
            Err(ErrorCode::AddressInUse) => Ok(FamilyStatus::InUse),
            Err(ErrorCode::AccessDenied) => Ok(FamilyStatus::Denied),
            Err(ErrorCode::NotSupported | ErrorCode::AddressNotBindable) => {
                Ok(FamilyStatus::Unsupported)
            }
            Err(code) => Err(to_error(code)),
        }
    }
}

impl Binder for WasiProbe {
    type Socket = TcpSocket;

    fn bind(&mut self, place: Place, port: u16) -> Result<TcpSocket, Refusal> {
        let bound = match place {
            Place::Loopback4 => self.bind_loopback(IpAddressFamily::Ipv4, port),
            Place::Loopback6 => self.bind_loopback(IpAddressFamily::Ipv6, port),
            Place::Wildcard4 => bind_wildcard(IpAddressFamily::Ipv4, port),
            Place::Wildcard6 => bind_wildcard(IpAddressFamily::Ipv6, port),
        };
        bound.map_err(refusal)
    }

    fn listen(&mut self, socket: TcpSocket) -> Result<TcpSocket, Refusal> {
        listen(socket).map_err(refusal)
    }

    fn port_of(&mut self, socket: &TcpSocket) -> Result<u16, Refusal> {
        match socket.local_address().map_err(refusal)? {
            IpSocketAddress::Ipv4(address) => Ok(address.port),
            IpSocketAddress::Ipv6(address) => Ok(address.port),
        }
    }
}

/// A fresh socket bound to the wildcard address: a guard, never listening.
fn bind_wildcard(family: IpAddressFamily, port: u16) -> Result<TcpSocket, ErrorCode> {
    let socket = create_tcp_socket(family)?;
    let address = socket_address(family, port, (0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0));
    NETWORK.with(|network| socket.start_bind(network, address))?;
    finished(|| socket.finish_bind(), || socket.subscribe()).map(|()| socket)
}

/// A `wasi:sockets` error as the decisions read it.
fn refusal(code: ErrorCode) -> Refusal {
    match code {
        ErrorCode::AddressInUse => Refusal::InUse,
        ErrorCode::NotSupported | ErrorCode::AddressNotBindable => Refusal::NoFamily,
        ErrorCode::AccessDenied => Refusal::Denied,
        other => Refusal::Other(other.name().into()),
    }
}

/// Listens on a bound socket.
pub(crate) fn listen(socket: TcpSocket) -> Result<TcpSocket, ErrorCode> {
    socket.start_listen()?;
    finished(|| socket.finish_listen(), || socket.subscribe()).map(|()| socket)
}

/// The end of a two-step socket call (`finish-bind`, `finish-listen`).
/// wasmtime finishes at once, but the WASI contract lets a host defer (to ask
/// the user, say), so `would-block` waits on the socket and asks again.
pub(crate) fn finished(
    mut finish: impl FnMut() -> Result<(), ErrorCode>,
    subscribe: impl Fn() -> Pollable,
) -> Result<(), ErrorCode> {
    loop {
        match finish() {
            Err(ErrorCode::WouldBlock) => subscribe().block(),
            result => return result,
        }
    }
}

/// `port` on `family`'s address: `ipv4` or `ipv6`, whichever the family is.
pub(crate) fn socket_address(
    family: IpAddressFamily,
    port: u16,
    ipv4: (u8, u8, u8, u8),
    ipv6: (u16, u16, u16, u16, u16, u16, u16, u16),
) -> IpSocketAddress {
    match family {
        IpAddressFamily::Ipv4 => IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port,
            address: ipv4,
        }),
        IpAddressFamily::Ipv6 => IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port,
            flow_info: 0,
            address: ipv6,
            scope_id: 0,
        }),
    }
}

fn port_of(socket: &TcpSocket) -> Result<u16, Error> {
    Ok(match socket.local_address().map_err(to_error)? {
        IpSocketAddress::Ipv4(address) => address.port,
        IpSocketAddress::Ipv6(address) => address.port,
    })
}

pub(crate) fn to_error(code: ErrorCode) -> Error {
    match code {
        ErrorCode::AccessDenied => Error::AccessDenied,
        other => Error::Other(other.name().into()),
    }
}

impl Probe for WasiProbe {
    fn is_free(&mut self, port: u16) -> Result<bool, Error> {
        with_wildcard(|wildcard| freeness::is_free(self, wildcard, port))
    }

    /// The hold is the socket bound to the port on 127.0.0.1: while it is
    /// bound, the OS picks other ports.
    type Hold = TcpSocket;

    fn os_chosen(&mut self) -> Result<Option<(u16, TcpSocket)>, Error> {
        // A port held elsewhere stays bound here until this pick is over, so
        // that the OS does not offer it again in the next attempt.
        let mut refused = Vec::new();
        for _ in 0..OS_CHOICE_ATTEMPTS {
            let Some((port, socket)) = bind_os_chosen(self)? else {
                return Ok(None);
            };
            if with_wildcard(|wildcard| freeness::others_allow(self, wildcard, port))? {
                return Ok(Some((port, socket)));
            }
            refused.push(socket);
        }
        Ok(None)
    }
}

/// Takes ports by listening on them: the search behind `reserve-port`.
#[derive(Default)]
pub struct WasiReserver {
    probe: WasiProbe,
}

/// A listening socket held as one of this instance's reservations, with its
/// wildcard guards where the host grants them. Dropping it closes them all,
/// and the instance forgets the port.
pub struct Listener {
    port: u16,
    /// Always `Some` until [`Listener::into_socket`] moves it out.
    socket: Option<TcpSocket>,
    /// Bound on 0.0.0.0 and [::], never listening: on BSD and Windows they
    /// keep a later wildcard bind off the port (see `freeness`).
    guards: Vec<TcpSocket>,
}

impl Listener {
    fn hold(held: freeness::Held<TcpSocket>) -> Self {
        HELD.with_borrow_mut(|ports| ports.insert(held.port));
        Listener {
            port: held.port,
            socket: Some(held.listener),
            guards: held.guards,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket, for a caller who keeps the port from now on; this
    /// instance no longer counts it as its own, and its guards close.
    pub fn into_socket(mut self) -> TcpSocket {
        self.guards.clear();
        self.socket
            .take()
            .expect("a listener gives its socket away once, as it is consumed")
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        HELD.with_borrow_mut(|held| held.remove(self.port));
    }
}

impl Take for WasiReserver {
    type Taken = Listener;

    fn take(&mut self, port: u16) -> Result<Option<Listener>, Error> {
        if HELD.with_borrow(|held| held.contains(port)) {
            return Ok(None);
        }
        // Bind first: like the probe's, it disturbs nobody, and it settles
        // most held ports with one socket. The listen fails with
        // address-in-use when anyone holds the port, including a rival
        // reserving it this very moment: of two listens on one port, the OS
        // lets one succeed.
        let held = with_wildcard(|wildcard| freeness::hold(&mut self.probe, wildcard, port))?;
        Ok(held.map(Listener::hold))
    }

    fn take_os_chosen(&mut self) -> Result<Option<Listener>, Error> {
        // As `take`, with the port the OS binds. A port held elsewhere
        // stays bound here until the pick is over, as in `os_chosen`.
        let mut refused = Vec::new();
        for _ in 0..OS_CHOICE_ATTEMPTS {
            let Some((port, socket)) = bind_os_chosen(&mut self.probe)? else {
                return Ok(None);
            };
            let held = with_wildcard(|wildcard| {
                freeness::hold_bound(&mut self.probe, wildcard, port, socket)
            })?;
            match held {
                Ok(held) => return Ok(Some(Listener::hold(held))),
                Err(socket) => refused.extend(socket),
            }
        }
        Ok(None)
    }

    fn port_of(taken: &Listener) -> u16 {
        taken.port
    }
}
