//! The descriptor of a reservation's listening socket, found in this
//! process (Unix only: on Windows wasmtime-wasi's SOCKET has no number a
//! process can list, and `Reservation.socket()` refuses; see `reservation`).
//!
//! wasmtime-wasi 48 keeps a `wasi:sockets` socket's descriptor private (its
//! `TcpSocket::as_fd` is not public), but the socket is this very process's:
//! while the store still holds it, the one listener on 127.0.0.1:port is
//! among our descriptors. Each is duplicated first and checked on the
//! duplicate, so a descriptor closed and reused by another thread meanwhile
//! cannot be mistaken for it; only one socket can listen on 127.0.0.1:port
//! (wasmtime does not set SO_REUSEPORT), so the match is unique.
//!
//! A listener is told apart from the other sockets on 127.0.0.1:port (a
//! connection accepted from it, or a client's) as each kernel allows:
//!
//! - Linux: `SO_ACCEPTCONN` is 1, the kernel's own word for "listening";
//! - macOS (XNU), which answers `SO_ACCEPTCONN` with ENOPROTOOPT: the socket
//!   has no peer (`getpeername` fails with ENOTCONN, which a connected
//!   socket never does) and, where `TCP_CONNECTION_INFO` answers, its TCP
//!   state is LISTEN. The reservation's wildcard guards there (sockets
//!   bound, never listening, on 0.0.0.0:port and [::]:port; see
//!   `src/freeness.rs`) have other addresses, so they never match;
//! - any other Unix: the first check where the kernel answers
//!   `SO_ACCEPTCONN`, else the second.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// A descriptor this process owns (closed on drop), close-on-exec.
pub struct Fd(OwnedFd);

impl Fd {
    /// The number, still owned here.
    pub fn as_raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Hands the descriptor over; the caller closes it.
    pub fn into_raw(self) -> RawFd {
        self.0.into_raw_fd()
    }
}

/// A duplicate of the socket listening on 127.0.0.1:`port` in this process.
pub fn listener_on_loopback(port: u16) -> Result<Fd, String> {
    find(port, listens_on_loopback)
}

/// A duplicate of the first of this process's descriptors that `is_it`
/// accepts for `port`.
fn find(port: u16, is_it: fn(&OwnedFd, u16) -> bool) -> Result<Fd, String> {
    let listing = ["/proc/self/fd", "/dev/fd"]
        .iter()
        .find_map(|dir| std::fs::read_dir(dir).ok())
        .ok_or("cannot list this process's descriptors (no /proc/self/fd or /dev/fd)")?;
    let numbers: Vec<RawFd> = listing
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for number in numbers {
        // SAFETY: F_DUPFD_CLOEXEC on any number is harmless: it fails for a
        // closed one, and the duplicate is ours alone.
        let dup = unsafe { libc::fcntl(number, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            continue;
        }
        // SAFETY: `dup` was just made and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        if is_it(&fd, port) {
            return Ok(Fd(fd));
        }
    }
    Err(format!(
        "the listening socket on 127.0.0.1:{port} is not among this process's descriptors"
    ))
}

/// This OS's test (see the module's comment).
fn listens_on_loopback(fd: &OwnedFd, port: u16) -> bool {
    if !stream_on_loopback(fd, port) {
        return false;
    }
    match int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) {
        Ok(listening) => listening == 1,
        // XNU: no SO_ACCEPTCONN for getsockopt.
        Err(_) if cfg!(not(target_os = "linux")) => peerless(fd) && tcp_state_is_listen(fd),
        Err(_) => false,
    }
}

/// A TCP socket whose own address is 127.0.0.1:`port`.
fn stream_on_loopback(fd: &OwnedFd, port: u16) -> bool {
    if int_option(fd, libc::SOL_SOCKET, libc::SO_TYPE) != Ok(libc::SOCK_STREAM) {
        return false;
    }
    // SAFETY: an all-zero sockaddr_in is a valid value to be written over.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `address` has room for `len` bytes; a longer (IPv6) address
    // is cut short and its family tells it apart.
    let ok = unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut address).cast(), &raw mut len) };
    ok == 0
        && i32::from(address.sin_family) == libc::AF_INET
        && u16::from_be(address.sin_port) == port
        && u32::from_be(address.sin_addr.s_addr) == u32::from(std::net::Ipv4Addr::LOCALHOST)
}

/// No peer: `getpeername` fails with ENOTCONN. A listener has none, and
/// neither has a socket only bound; a connected one always has one.
fn peerless(fd: &OwnedFd) -> bool {
    // SAFETY: as in `stream_on_loopback`; a storage holds any address.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `address` has room for `len` bytes.
    let ok = unsafe { libc::getpeername(fd.as_raw_fd(), (&raw mut address).cast(), &raw mut len) };
    ok != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOTCONN)
}

/// XNU's `TCP_CONNECTION_INFO` (macOS 10.11 and later): the TCP state is
/// LISTEN (`TCPS_LISTEN`, 1 in `netinet/tcp_fsm.h`). Where the option does
/// not answer, `peerless` alone decides: the reservation's listener is the
/// only peerless stream socket on 127.0.0.1:port, as the module says.
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn tcp_state_is_listen(fd: &OwnedFd) -> bool {
    const TCPS_LISTEN: u8 = 1;
    // SAFETY: an all-zero tcp_connection_info is a valid value (plain
    // integers) to be written over.
    let mut info: libc::tcp_connection_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_connection_info>() as libc::socklen_t;
    // SAFETY: `info` has room for `len` bytes.
    let ok = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONNECTION_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    ok != 0 || info.tcpi_state == TCPS_LISTEN
}

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn tcp_state_is_listen(_fd: &OwnedFd) -> bool {
    true
}

/// An `int` socket option, or the errno of its refusal.
fn int_option(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> Result<libc::c_int, i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for getsockopt's int options.
    let ok = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if ok == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    //! The XNU test (`peerless`, for want of SO_ACCEPTCONN) runs here on
    //! Linux too, against every kind of socket that can share 127.0.0.1:port
    //! with the listener, and finds the listener alone, as Linux's does.
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsFd;

    /// The XNU way, whatever this OS is.
    fn xnu_way(fd: &OwnedFd, port: u16) -> bool {
        stream_on_loopback(fd, port) && peerless(fd)
    }

    fn owned(fd: impl AsFd) -> OwnedFd {
        fd.as_fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn both_ways_find_the_listener_and_nothing_else_on_its_port() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        // Around it: a client and the connection accepted (both on
        // 127.0.0.1, the accepted one on the very port), a UDP socket on
        // the same port, a TCP socket bound but not listening and a
        // wildcard listener, each on other ports (as macOS's guards are on
        // other addresses).
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let wildcard = TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let wildcard_port = wildcard.local_addr().unwrap().port();
        let bound_only = bound_not_listening();
        let bound_port = bound_only.1;

        for way in [listens_on_loopback as fn(&OwnedFd, u16) -> bool, xnu_way] {
            assert!(way(&owned(&listener), port));
            assert!(!way(&owned(&accepted), port));
            assert!(!way(&owned(&client), client.local_addr().unwrap().port()));
            assert!(!way(&owned(&udp), port));
            assert!(!way(&owned(&wildcard), wildcard_port));
            let found = find(port, way).expect("the listener");
            assert_eq!(
                TcpListener::from(found.0).local_addr().unwrap(),
                listener.local_addr().unwrap()
            );
        }
        // Bound only: peerless too, but never listening (Linux's check);
        // on macOS no such socket can be on 127.0.0.1:port beside the
        // reservation's listener, which holds that address alone.
        assert!(xnu_way(&bound_only.0, bound_port));
        assert!(!listens_on_loopback(&bound_only.0, bound_port));
        assert!(find(bound_port, listens_on_loopback).is_err());
    }

    #[test]
    fn a_closed_listener_is_not_found() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let error = listener_on_loopback(port).err().expect("no listener");
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    }

    /// A TCP socket bound to 127.0.0.1 (a port the OS picks) that never
    /// listens, with its port.
    fn bound_not_listening() -> (OwnedFd, u16) {
        // SAFETY: plain socket calls on a descriptor made here and owned
        // by the OwnedFd at once.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(raw >= 0);
            let fd = OwnedFd::from_raw_fd(raw);
            let mut address: libc::sockaddr_in = std::mem::zeroed();
            address.sin_family = libc::AF_INET as libc::sa_family_t;
            address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(libc::bind(raw, (&raw const address).cast(), len), 0);
            let mut len = len;
            assert_eq!(
                libc::getsockname(raw, (&raw mut address).cast(), &raw mut len),
                0
            );
            (fd, u16::from_be(address.sin_port))
        }
    }
}
