//! What the component asks wasmtime for, asked of the OS directly: a
//! non-blocking, SO_REUSEADDR socket bound on 127.0.0.1 and then (v6-only) on
//! ::1, closed straight away. The ports bench times these beside the
//! component; the tenants example times `reserve` as each warm call's twin.

use socket2::{Domain, Socket, Type};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A non-blocking TCP socket: made so in one call where the OS can
/// (Linux's SOCK_NONBLOCK), else set so after (macOS, Windows).
fn stream(domain: Domain) -> std::io::Result<Socket> {
    #[cfg(target_os = "linux")]
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), None)?;
    #[cfg(not(target_os = "linux"))]
    let socket = Socket::new(domain, Type::STREAM, None)?;
    #[cfg(not(target_os = "linux"))]
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = stream(Domain::for_address(addr))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn ipv6_allows(port: u16) -> bool {
    match bind((Ipv6Addr::LOCALHOST, port).into()) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::AddrInUse => false,
        Err(_) => true,
    }
}

pub fn is_free(port: u16) -> bool {
    match bind((Ipv4Addr::LOCALHOST, port).into()) {
        Ok(_) => ipv6_allows(port),
        Err(e) if e.kind() == ErrorKind::AddrInUse => false,
        Err(e) => panic!("bind: {e}"),
    }
}

pub fn os_chosen() -> u16 {
    loop {
        let socket = bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        if ipv6_allows(port) {
            return port;
        }
    }
}

/// What `reserve-port` does for one free port: bind 127.0.0.1, check
/// ::1, then listen. Address-in-use when ::1 holds the port.
pub fn reserve(port: u16) -> std::io::Result<Socket> {
    let socket = bind((Ipv4Addr::LOCALHOST, port).into())?;
    if !ipv6_allows(port) {
        return Err(ErrorKind::AddrInUse.into());
    }
    socket.listen(128)?;
    Ok(socket)
}

/// As the component searches: one socket tried on candidate after
/// candidate while their binds fail (a failed bind leaves it unbound and
/// usable), then the [::1] check on the one that binds.
pub fn get_free_port(ports: impl IntoIterator<Item = u16>) -> u16 {
    let mut socket: Option<Socket> = None;
    for port in ports {
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let unbound = match socket.take() {
            Some(socket) => socket,
            None => {
                let fresh = stream(Domain::IPV4).unwrap();
                fresh.set_reuse_address(true).unwrap();
                fresh
            }
        };
        match unbound.bind(&addr.into()) {
            Ok(()) if ipv6_allows(port) => return port,
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AddrInUse => socket = Some(unbound),
            Err(e) => panic!("bind: {e}"),
        }
    }
    os_chosen()
}
