//! The `wasi:sockets` probe: the only code in the component that talks to the host.
//!
//! A port is probed by binding a fresh TCP socket to it on loopback and closing
//! it again. A bind is answered by the kernel's port table alone, so it sees
//! listeners and plain bound sockets without ever reaching the service behind
//! them; a `connect` (what hbutils does) makes a live server accept a junk
//! connection and blocks for as long as its accept queue is full. The probe
//! never listens either: a listening probe can make the real owner's own
//! `listen` fail in that instant.

use crate::search::{Error, Probe};
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
            let port = match socket.local_address().map_err(to_error)? {
                IpSocketAddress::Ipv4(address) => address.port,
                IpSocketAddress::Ipv6(address) => address.port,
            };
            if self.ipv6_allows(port)? {
                return Ok(port);
            }
        }
        Err(Error::Other(ErrorCode::AddressInUse.name().into()))
    }
}
