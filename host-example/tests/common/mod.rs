//! Shared by the integration tests: one compiled component per test binary,
//! ports the OS vouches for, and the kinds of socket that hold a port.
#![allow(dead_code)] // each test binary uses its own share of these helpers

use port_host::{NetworkPolicy, PortHost, Session, Stderr};
use socket2::{Domain, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::OnceLock;

pub fn host() -> &'static PortHost {
    static HOST: OnceLock<PortHost> = OnceLock::new();
    HOST.get_or_init(|| PortHost::new().expect("the embedded component loads"))
}

pub fn session() -> Session {
    host()
        .session(NetworkPolicy::LoopbackTcp, Stderr::Capture)
        .expect("a session starts")
}

pub fn ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// Whether nothing holds `port` on 127.0.0.1 nor, where it exists, on ::1,
/// asked of the OS directly (a bind without SO_REUSEADDR, so any holder counts).
pub fn natively_free(port: u16) -> bool {
    let bindable = |addr: SocketAddr| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        if addr.is_ipv6() {
            socket.set_only_v6(true).unwrap();
        }
        socket.bind(&addr.into()).is_ok()
    };
    bindable((Ipv4Addr::LOCALHOST, port).into())
        && (!ipv6_loopback() || bindable((Ipv6Addr::LOCALHOST, port).into()))
}

/// `len` consecutive ports, all free on both loopbacks when checked, starting
/// from a port the OS handed out, so parallel tests and busy machines differ.
pub fn free_block(len: u16) -> u16 {
    for _ in 0..200 {
        let start = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        if start.checked_add(len).is_some() && (start..start + len).all(natively_free) {
            return start;
        }
    }
    panic!("no block of {len} free loopback ports found");
}

pub fn free_port() -> u16 {
    free_block(1)
}

/// `len` consecutive ports, all free when checked, below the OS's ephemeral
/// range, so that no `bind(0)` in a parallel test can be handed one of them
/// while a test counts on them. The search starts at a pseudo-random place so
/// that concurrent test processes seldom pick the same block.
pub fn free_block_below_ephemeral(len: u16) -> u16 {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (floor, ceiling) = (10_000, ephemeral_low.saturating_sub(len));
    assert!(
        ceiling > floor,
        "the ephemeral range leaves no room below it"
    );
    let offset = std::process::id() % u32::from(ceiling - floor);
    let mut start = floor + offset as u16;
    for _ in 0..2 * (ceiling - floor) / len {
        match (start..start + len).find(|&port| !natively_free(port)) {
            None => return start,
            Some(held) => start = held + 1,
        }
        if start > ceiling {
            start = floor;
        }
    }
    panic!("no block of {len} free ports below the ephemeral range");
}

/// The kinds of socket that hold a port; each must make the port read busy.
pub enum Holder {
    Ipv4Loopback,
    Ipv4Wildcard,
    Ipv6Wildcard,
    Ipv6LoopbackOnly,
    BoundNotListening,
}

pub fn hold(holder: Holder, port: u16) -> Socket {
    let (addr, v6_only, listen): (SocketAddr, bool, bool) = match holder {
        Holder::Ipv4Loopback => ((Ipv4Addr::LOCALHOST, port).into(), false, true),
        Holder::Ipv4Wildcard => ((Ipv4Addr::UNSPECIFIED, port).into(), false, true),
        Holder::Ipv6Wildcard => ((Ipv6Addr::UNSPECIFIED, port).into(), false, true),
        Holder::Ipv6LoopbackOnly => ((Ipv6Addr::LOCALHOST, port).into(), true, true),
        Holder::BoundNotListening => ((Ipv4Addr::LOCALHOST, port).into(), false, false),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only).unwrap();
    }
    // Servers set SO_REUSEADDR; the plain bound socket is the one that does not.
    socket.set_reuse_address(listen).unwrap();
    socket.bind(&addr.into()).unwrap();
    if listen {
        socket.listen(128).unwrap();
    }
    socket
}

/// A listener on 127.0.0.1:`port`, as most test servers are.
pub fn listen(port: u16) -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap()
}
