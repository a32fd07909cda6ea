//! Adversarial guest for the sandbox tests: each export attempts one thing the
//! host's loopback-TCP policy must refuse (or, as a control, allow).
#![cfg(target_arch = "wasm32")]

use std::net::IpAddr;
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp_create_socket::create_tcp_socket;
use wasi::sockets::udp_create_socket::create_udp_socket;

wit_bindgen::generate!({ path: "wit", world: "escape" });

struct Escape;

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

impl Guest for Escape {
    fn bind_tcp(ip: String, port: u16) -> String {
        let (family, addr) = address(&ip, port);
        outcome((|| {
            let socket = create_tcp_socket(family).map_err(|e| ("create", e))?;
            socket
                .start_bind(&instance_network(), addr)
                .map_err(|e| ("bind", e))?;
            finish(|| socket.finish_bind(), || socket.subscribe()).map_err(|e| ("bind", e))
        })())
    }

    fn listen_tcp(ip: Option<String>) -> String {
        let family = match &ip {
            Some(ip) => address(ip, 0).0,
            None => IpAddressFamily::Ipv4,
        };
        outcome((|| {
            let socket = create_tcp_socket(family).map_err(|e| ("create", e))?;
            if let Some(ip) = &ip {
                socket
                    .start_bind(&instance_network(), address(ip, 0).1)
                    .map_err(|e| ("bind", e))?;
                finish(|| socket.finish_bind(), || socket.subscribe()).map_err(|e| ("bind", e))?;
            }
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
}

export!(Escape);
