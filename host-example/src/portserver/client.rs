//! A client for the port server, the old request and the new ones.
//!
//! ```no_run
//! use port_host::portserver::{Address, client};
//!
//! let server = Address::parse("@unittest-portserver").unwrap();
//! let pid = std::process::id();
//! let port = client::pick_unused_port(&server, pid)?;
//! // Or the socket itself, already listening: nobody can take the port
//! // between the answer and the bind.
//! let held = client::get_sockets(&server, pid, 1)?;
//! let (port, listener) = &held[0];
//! # let _ = (port, listener);
//! # Ok::<(), std::io::Error>(())
//! ```

use super::{Address, fdpass, protocol};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

/// How long a request may take before the client gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// portpicker's request: one port for `pid`.
pub fn pick_unused_port(server: &Address, pid: u32) -> io::Result<u16> {
    let (ports, _) = request(server, &format!("{pid}\n"), false)?;
    one(ports)
}

/// `count` ports for `pid`, all or none.
pub fn get_ports(server: &Address, pid: u32, count: usize) -> io::Result<Vec<u16>> {
    let (ports, _) = request(server, &format!("get {pid} {count}\n"), false)?;
    expect(ports, count)
}

/// `count` ports for `pid`, each with its listening TCP socket (on every
/// address), all or none.
pub fn get_sockets(
    server: &Address,
    pid: u32,
    count: usize,
) -> io::Result<Vec<(u16, TcpListener)>> {
    let (ports, fds) = request(server, &format!("socket {pid} {count}\n"), true)?;
    let ports = expect(ports, count)?;
    if fds.len() != ports.len() {
        return Err(io::Error::other(format!(
            "the port server sent {} sockets for {} ports",
            fds.len(),
            ports.len()
        )));
    }
    Ok(ports
        .into_iter()
        .zip(fds.into_iter().map(TcpListener::from))
        .collect())
}

/// Gives `ports` back to the pool; `pid` must hold every one.
pub fn release(server: &Address, pid: u32, ports: &[u16]) -> io::Result<()> {
    let line = protocol::reply(ports);
    let (released, _) = request(server, &format!("release {pid} {line}"), false)?;
    expect(released, ports.len()).map(drop)
}

fn one(ports: Vec<u16>) -> io::Result<u16> {
    expect(ports, 1).map(|ports| ports[0])
}

fn expect(ports: Vec<u16>, count: usize) -> io::Result<Vec<u16>> {
    if ports.len() == count {
        Ok(ports)
    } else {
        Err(io::Error::other(format!(
            "the port server answered {} ports for {count}",
            ports.len()
        )))
    }
}

/// Connects to `server`.
pub fn connect(server: &Address) -> io::Result<UnixStream> {
    match server {
        Address::Path(path) => UnixStream::connect(path),
        Address::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)
        }
    }
}

/// Sends `line`, reads the reply to its end (and the descriptors with it).
fn request(server: &Address, line: &str, with_fds: bool) -> io::Result<(Vec<u16>, Vec<OwnedFd>)> {
    let mut stream = connect(server)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    stream.write_all(line.as_bytes())?;
    let mut reply = Vec::new();
    let mut fds = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let read = if with_fds {
            let (read, more) = fdpass::receive(stream.as_fd(), &mut chunk)?;
            fds.extend(more);
            read
        } else {
            stream.read(&mut chunk)?
        };
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        if reply.len() > protocol::MAX_REQUEST {
            return Err(io::Error::other("the port server's reply is too long"));
        }
    }
    if reply.is_empty() {
        return Err(io::Error::other(
            "the port server refused the request (it closed without a reply)",
        ));
    }
    let ports = protocol::parse_reply(&reply)
        .ok_or_else(|| io::Error::other("the port server's reply is not a list of ports"))?;
    Ok((ports, fds))
}
