//! The descriptor of a reservation's listening socket, found in this process.
//!
//! wasmtime-wasi 48 keeps a `wasi:sockets` socket's descriptor private (its
//! `TcpSocket::as_fd` is not public), but the socket is this very process's:
//! while the store still holds it, the one listener on 127.0.0.1:port is
//! among our descriptors. Each is duplicated first and checked on the
//! duplicate, so a descriptor closed and reused by another thread meanwhile
//! cannot be mistaken for it; only one socket can listen on 127.0.0.1:port
//! (wasmtime does not set SO_REUSEPORT), so the match is unique.

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
        if listens_on_loopback(&fd, port) {
            return Ok(Fd(fd));
        }
    }
    Err(format!(
        "the listening socket on 127.0.0.1:{port} is not among this process's descriptors"
    ))
}

fn listens_on_loopback(fd: &OwnedFd, port: u16) -> bool {
    let raw = fd.as_raw_fd();
    let option = |level, name| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for getsockopt's int options.
        let ok =
            unsafe { libc::getsockopt(raw, level, name, (&raw mut value).cast(), &raw mut len) };
        (ok == 0).then_some(value)
    };
    if option(libc::SOL_SOCKET, libc::SO_TYPE) != Some(libc::SOCK_STREAM)
        || option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) != Some(1)
    {
        return false;
    }
    // SAFETY: an all-zero sockaddr_in is a valid value to be written over.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `address` has room for `len` bytes; a longer (IPv6) address
    // is cut short and its family tells it apart.
    let ok = unsafe { libc::getsockname(raw, (&raw mut address).cast(), &raw mut len) };
    ok == 0
        && i32::from(address.sin_family) == libc::AF_INET
        && u16::from_be(address.sin_port) == port
        && u32::from_be(address.sin_addr.s_addr) == u32::from(std::net::Ipv4Addr::LOCALHOST)
}
