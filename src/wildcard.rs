//! The port server's check, `is-free-on-wildcard`: may a client use this port
//! for anything, TCP or UDP, on any address?
//!
//! It is what portpicker's `portserver.py` checks before it hands a port out:
//! TCP bound and listening, then UDP bound, each on the IPv6 and IPv4
//! wildcard addresses. Wildcard binds conflict with a socket on any local
//! address of their family, so four binds cover every address the client
//! might use. Unlike the loopback probe this one listens: a port server's
//! port belongs to nobody else, so disturbing a stray listener's `listen` for
//! an instant is no harm, and a TCP bind alone (with SO_REUSEADDR, as wasmtime
//! binds) would not see a socket that is bound but not yet listening.

use crate::probe::{finished, listen, socket_address, to_error};
use crate::search::Error;
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Network};
use wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi::sockets::udp_create_socket::create_udp_socket;

/// What one bind found.
enum Bind {
    Free,
    InUse,
    /// The host has no such family (no IPv6): the other family decides.
    NoFamily,
}

/// Whether `port` is free for TCP and UDP on 0.0.0.0 and [::]. Port 0 is
/// checked by the caller.
pub fn is_free_on_wildcard(port: u16) -> Result<bool, Error> {
    let network = instance_network();
    // IPv6 first, as portserver.py does; any busy bind settles the answer.
    for check in [tcp, udp] {
        for family in [IpAddressFamily::Ipv6, IpAddressFamily::Ipv4] {
            match check(&network, family, port) {
                Ok(Bind::Free) => {}
                Ok(Bind::InUse) => return Ok(false),
                // IPv4 is never optional: a host without it cannot answer.
                Ok(Bind::NoFamily) if family == IpAddressFamily::Ipv6 => {}
                Ok(Bind::NoFamily) => return Err(Error::Other("not-supported".into())),
                Err(code) => return Err(to_error(code)),
            }
        }
    }
    Ok(true)
}

fn wildcard(family: IpAddressFamily, port: u16) -> IpSocketAddress {
    socket_address(family, port, (0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0))
}

/// The answers that say something about the port rather than the host.
fn outcome(result: Result<(), ErrorCode>) -> Result<Bind, ErrorCode> {
    match result {
        Ok(()) => Ok(Bind::Free),
        Err(ErrorCode::AddressInUse) => Ok(Bind::InUse),
        Err(ErrorCode::NotSupported | ErrorCode::AddressNotBindable) => Ok(Bind::NoFamily),
        Err(code) => Err(code),
    }
}

/// A TCP socket bound to the wildcard address and listening, then closed.
fn tcp(network: &Network, family: IpAddressFamily, port: u16) -> Result<Bind, ErrorCode> {
    let socket = match create_tcp_socket(family) {
        Ok(socket) => socket,
        Err(code) => return outcome(Err(code)),
    };
    let bound = socket
        .start_bind(network, wildcard(family, port))
        .and_then(|()| finished(|| socket.finish_bind(), || socket.subscribe()));
    outcome(bound.and_then(|()| listen(socket).map(drop)))
}

/// A UDP socket bound to the wildcard address, then closed.
fn udp(network: &Network, family: IpAddressFamily, port: u16) -> Result<Bind, ErrorCode> {
    let socket = match create_udp_socket(family) {
        Ok(socket) => socket,
        Err(code) => return outcome(Err(code)),
    };
    let bound = socket
        .start_bind(network, wildcard(family, port))
        .and_then(|()| finished(|| socket.finish_bind(), || socket.subscribe()));
    outcome(bound)
}
