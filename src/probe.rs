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

use crate::reservation::Reservation;
use crate::search::{Error, Probe, Take};
use std::cell::RefCell;
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

thread_local! {
    /// The instance's network handle, fetched once: every host call a probe
    /// saves is time saved on each of the thousands of ports a search may try.
    static NETWORK: Network = instance_network();

    /// Ports this instance's live reservations hold, so that a search skips
    /// them without a socket call. (The OS would refuse them anyway.) A list:
    /// a hash set would pull in a random seed and a tenth of the component's
    /// size, to search a few entries.
    static HELD: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// What one loopback bind found; mirrors the WIT `family-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStatus {
    Free,
    InUse,
    Denied,
    Unsupported,
}

pub struct WasiProbe;

impl WasiProbe {
    fn bind_loopback(&self, family: IpAddressFamily, port: u16) -> Result<TcpSocket, ErrorCode> {
        let socket = create_tcp_socket(family)?;
        let address = match family {
            IpAddressFamily::Ipv4 => IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port,
                address: (127, 0, 0, 1),
            }),
            IpAddressFamily::Ipv6 => IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address: (0, 0, 0, 0, 0, 0, 0, 1),
                scope_id: 0,
            }),
        };
        NETWORK.with(|network| socket.start_bind(network, address))?;
        // wasmtime finishes a bind at once, but the WASI contract lets a host
        // defer it (to ask the user, say), so honour `would-block`.
        loop {
            match socket.finish_bind() {
                Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
                result => return result.map(|()| socket),
            }
        }
    }

    /// Listens on a socket `bind_loopback` made.
    fn listen(&self, socket: TcpSocket) -> Result<TcpSocket, ErrorCode> {
        socket.start_listen()?;
        loop {
            match socket.finish_listen() {
                Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
                result => return result.map(|()| socket),
            }
        }
    }

    /// What a bind of `port` on `family`'s loopback address finds.
    pub fn family_status(&self, family: IpAddressFamily, port: u16) -> Result<FamilyStatus, Error> {
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

    /// Whether [::1]:`port` is free; a host without IPv6 loopback leaves the
    /// answer to IPv4 rather than calling every port busy.
    fn ipv6_allows(&self, port: u16) -> Result<bool, Error> {
        match self.bind_loopback(IpAddressFamily::Ipv6, port) {
            Ok(_) => Ok(true),
            Err(ErrorCode::AddressInUse) => Ok(false),
            Err(ErrorCode::NotSupported | ErrorCode::AddressNotBindable) => Ok(true),
            Err(code) => Err(to_error(code)),
        }
    }
}

fn port_of(socket: &TcpSocket) -> Result<u16, Error> {
    Ok(match socket.local_address().map_err(to_error)? {
        IpSocketAddress::Ipv4(address) => address.port,
        IpSocketAddress::Ipv6(address) => address.port,
    })
}

fn to_error(code: ErrorCode) -> Error {
    match code {
        ErrorCode::AccessDenied => Error::AccessDenied,
        other => Error::Other(other.name().into()),
    }
}

impl Probe for WasiProbe {
    fn is_free(&mut self, port: u16) -> Result<bool, Error> {
        // IPv4 first: it is the family every host has, and a port held there
        // is settled without a second socket.
        match self.bind_loopback(IpAddressFamily::Ipv4, port) {
            Ok(_) => self.ipv6_allows(port),
            Err(ErrorCode::AddressInUse) => Ok(false),
            Err(code) => Err(to_error(code)),
        }
    }

    fn os_chosen(&mut self) -> Result<u16, Error> {
        for _ in 0..OS_CHOICE_ATTEMPTS {
            let socket = self
                .bind_loopback(IpAddressFamily::Ipv4, 0)
                .map_err(to_error)?;
            let port = port_of(&socket)?;
            if self.ipv6_allows(port)? {
                return Ok(port);
            }
        }
        Err(Error::Other(ErrorCode::AddressInUse.name().into()))
    }
}

/// Takes ports by listening on them: the search behind `reserve-port`.
pub struct WasiReserver;

/// Forgets a port this instance no longer holds (released, handed over, dropped).
pub fn forget_held(port: u16) {
    HELD.with(|held| held.borrow_mut().retain(|&held| held != port));
}

/// Keeps `socket`, listening on `port`, as this instance's reservation.
fn hold(port: u16, socket: TcpSocket) -> Reservation<TcpSocket> {
    HELD.with(|held| held.borrow_mut().push(port));
    Reservation::new(port, socket)
}

impl Take for WasiReserver {
    type Taken = Reservation<TcpSocket>;

    fn take(&mut self, port: u16) -> Result<Option<Self::Taken>, Error> {
        if HELD.with(|held| held.borrow().contains(&port)) {
            return Ok(None);
        }
        // Bind first: like the probe's, it disturbs nobody, and it settles
        // most held ports with one socket. Then [::1], before listening, so
        // that a port someone holds there never sees our listener on
        // 127.0.0.1 even for an instant: its owner may be about to listen on
        // it too. The bind or the listen fails with address-in-use when anyone
        // holds the port, including a rival reserving it this very moment: of
        // two listens on one port, the OS lets one succeed.
        let socket = match WasiProbe.bind_loopback(IpAddressFamily::Ipv4, port) {
            Ok(socket) => socket,
            Err(ErrorCode::AddressInUse) => return Ok(None),
            Err(code) => return Err(to_error(code)),
        };
        if !WasiProbe.ipv6_allows(port)? {
            return Ok(None);
        }
        match WasiProbe.listen(socket) {
            Ok(socket) => Ok(Some(hold(port, socket))),
            Err(ErrorCode::AddressInUse) => Ok(None),
            Err(code) => Err(to_error(code)),
        }
    }

    fn take_os_chosen(&mut self) -> Result<Self::Taken, Error> {
        // As `take`, with the port the OS binds: bind, check [::1], listen.
        for _ in 0..OS_CHOICE_ATTEMPTS {
            let socket = WasiProbe
                .bind_loopback(IpAddressFamily::Ipv4, 0)
                .map_err(to_error)?;
            let port = port_of(&socket)?;
            if !WasiProbe.ipv6_allows(port)? {
                continue;
            }
            match WasiProbe.listen(socket) {
                Ok(socket) => return Ok(hold(port, socket)),
                // A rival's listen on the very port the OS just gave us.
                Err(ErrorCode::AddressInUse) => continue,
                Err(code) => return Err(to_error(code)),
            }
        }
        Err(Error::Other(ErrorCode::AddressInUse.name().into()))
    }
}
