//! Adversarial guest for the sandbox tests: each export attempts one thing the
//! host's policy or bounds must refuse (or, as a control, allow).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::net::IpAddr;
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi::sockets::udp_create_socket::create_udp_socket;

wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "test:escape/escape",
    with: {
        "hbutils:network/port@0.4.0": generate,
        "wasi:sockets/tcp@0.2.12": wasi::sockets::tcp,
        "wasi:sockets/network@0.2.12": wasi::sockets::network,
        "wasi:io/poll@0.2.12": wasi::io::poll,
        "wasi:io/streams@0.2.12": wasi::io::streams,
        "wasi:io/error@0.2.12": wasi::io::error,
        "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
    },
});

use exports::hbutils::network::port::{
    self, Candidates, ErrorCode as PortError, PortStatus, ReservationError,
};

struct Escape;

thread_local! {
    /// Sockets `hoard-sockets` keeps open for the life of the instance.
    static HOARD: RefCell<Vec<TcpSocket>> = const { RefCell::new(Vec::new()) };
}

/// "ok", or the failing step with the host's error-code.
fn outcome(result: Result<(), (&str, ErrorCode)>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err((step, code)) => format!("{step}: {}", code.name()),
    }
}

fn address(ip: &str, port: u16) -> (IpAddressFamily, IpSocketAddress) {
    match ip.parse::<IpAddr>().expect("the test passes IP literals") {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let address = Ipv4SocketAddress {
                port,
                address: (a, b, c, d),
            };
            (IpAddressFamily::Ipv4, IpSocketAddress::Ipv4(address))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            let address = Ipv6SocketAddress {
                port,
                flow_info: 0,
                address: (a, b, c, d, e, f, g, h),
                scope_id: 0,
            };
            (IpAddressFamily::Ipv6, IpSocketAddress::Ipv6(address))
        }
    }
}

/// Runs a start/finish pair to completion, waiting on `pollable` while the
/// host says would-block.
fn finish<T>(
    mut finish: impl FnMut() -> Result<T, ErrorCode>,
    pollable: impl Fn() -> wasi::io::poll::Pollable,
) -> Result<T, ErrorCode> {
    loop {
        match finish() {
            Err(ErrorCode::WouldBlock) => pollable().block(),
            result => return result,
        }
    }
}

fn bound_tcp(ip: &str, port: u16) -> Result<TcpSocket, (&'static str, ErrorCode)> {
    let (family, addr) = address(ip, port);
    let socket = create_tcp_socket(family).map_err(|e| ("create", e))?;
    socket
        .start_bind(&instance_network(), addr)
        .map_err(|e| ("bind", e))?;
    finish(|| socket.finish_bind(), || socket.subscribe()).map_err(|e| ("bind", e))?;
    Ok(socket)
}

impl Guest for Escape {
    fn bind_tcp(ip: String, port: u16) -> String {
        outcome(bound_tcp(&ip, port).map(drop))
    }

    fn listen_tcp(ip: Option<String>) -> String {
        outcome((|| {
            let socket = match &ip {
                Some(ip) => bound_tcp(ip, 0)?,
                None => create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| ("create", e))?,
            };
            socket.start_listen().map_err(|e| ("listen", e))?;
            finish(|| socket.finish_listen(), || socket.subscribe()).map_err(|e| ("listen", e))
        })())
    }

    fn connect_tcp(ip: String, port: u16) -> String {
        let (family, addr) = address(&ip, port);
        outcome((|| {
            let socket = create_tcp_socket(family).map_err(|e| ("create", e))?;
            socket
                .start_connect(&instance_network(), addr)
                .map_err(|e| ("connect", e))?;
            finish(|| socket.finish_connect(), || socket.subscribe())
                .map(drop)
                .map_err(|e| ("connect", e))
        })())
    }

    fn bind_udp(ip: String, port: u16) -> String {
        let (family, addr) = address(&ip, port);
        outcome((|| {
            let socket = create_udp_socket(family).map_err(|e| ("create", e))?;
            socket
                .start_bind(&instance_network(), addr)
                .map_err(|e| ("bind", e))?;
            finish(|| socket.finish_bind(), || socket.subscribe()).map_err(|e| ("bind", e))
        })())
    }

    fn lookup(name: String) -> String {
        outcome((|| {
            let stream =
                resolve_addresses(&instance_network(), &name).map_err(|e| ("resolve", e))?;
            finish(|| stream.resolve_next_address(), || stream.subscribe())
                .map(drop)
                .map_err(|e| ("resolve", e))
        })())
    }

    fn spin() {
        loop {
            std::hint::black_box(());
        }
    }

    fn hoard(mib: u32) -> u32 {
        let buffer = vec![1u8; mib as usize * 1024 * 1024];
        std::hint::black_box(&buffer)
            .iter()
            .map(|&b| u32::from(b))
            .sum()
    }

    fn hoard_sockets(most: u32) -> String {
        HOARD.with_borrow_mut(|hoard| {
            for _ in 0..most {
                match create_tcp_socket(IpAddressFamily::Ipv4) {
                    Ok(socket) => hoard.push(socket),
                    Err(code) => {
                        return format!("opened {}, then create: {}", hoard.len(), code.name());
                    }
                }
            }
            format!("opened {}", hoard.len())
        })
    }

    fn block_in_accept() -> String {
        outcome((|| {
            let socket = bound_tcp("127.0.0.1", 0)?;
            socket.start_listen().map_err(|e| ("listen", e))?;
            finish(|| socket.finish_listen(), || socket.subscribe()).map_err(|e| ("listen", e))?;
            finish(|| socket.accept(), || socket.subscribe())
                .map(drop)
                .map_err(|e| ("accept", e))
        })())
    }
}

/// The port interface as a hostile component would implement it.
impl port::Guest for Escape {
    type Reservation = Never;

    fn is_free_port(port: u16) -> Result<bool, PortError> {
        match port {
            1 => Err(PortError::Other(Self::block_in_accept())),
            2 => Err(PortError::Other(Self::hoard_sockets(u32::MAX))),
            3 => {
                Self::spin();
                unreachable!("spin never returns")
            }
            // Holding sockets, then a trap (the component profile aborts
            // on panic: a wasm `unreachable`), so a host can show it freed them.
            4 => {
                Self::hoard_sockets(8);
                panic!("the escape guest traps on request")
            }
            _ => Ok(true),
        }
    }

    fn get_free_port(_: Option<Candidates>, _: bool) -> Result<u16, PortError> {
        Err(PortError::Other("hostile".into()))
    }

    fn reserve_port(_: Option<Candidates>, _: bool) -> Result<port::Reservation, PortError> {
        Err(PortError::Other("hostile".into()))
    }

    fn get_free_ports(_: Option<Candidates>, _: u32, _: bool) -> Result<Vec<u16>, PortError> {
        Err(PortError::Other("hostile".into()))
    }

    fn reserve_ports(
        _: Option<Candidates>,
        _: u32,
        _: bool,
    ) -> Result<Vec<port::Reservation>, PortError> {
        Err(PortError::Other("hostile".into()))
    }

    fn probe_port(_: u16) -> Result<PortStatus, PortError> {
        Err(PortError::Other("hostile".into()))
    }

    fn is_free_on_wildcard(_: u16) -> Result<bool, PortError> {
        Err(PortError::Other("hostile".into()))
    }
}

/// No reservation is ever made, so none of its methods can be reached.
enum Never {}

impl port::GuestReservation for Never {
    fn port(&self) -> Result<u16, ReservationError> {
        match *self {}
    }
    fn take_socket(&self) -> Result<TcpSocket, ReservationError> {
        match *self {}
    }
    fn release(&self) -> Result<(), ReservationError> {
        match *self {}
    }
}

export!(Escape);
