//! `port-host portserver`: a drop-in for portpicker's port server
//! (`portserver.py`), whose ports never collide between live processes.
//!
//! # The protocol, byte for byte
//!
//! The server listens on an AF_UNIX stream socket, at a path or, for an
//! address that starts with `@`, at the abstract name after it. A client
//! connects, sends one request and reads one reply; the server then closes
//! the connection. portpicker's request and reply (1.6, Python and Go) are:
//!
//! ```text
//! request:  PID "\n"        the client's pid in ASCII digits
//! reply:    PORT "\n"       in one write, then close
//! ```
//!
//! The pid is read as portserver.py reads it, with Python's `int()`: ASCII
//! white space around it (so `" PID\n"` and `"PID\r\n"` are answered), an
//! optional sign, and single underscores between digits.
//!
//! On any failure (a bad request, a pid that is 0, 1, dead or another
//! process's, no free port, a state file that cannot be written) the server
//! closes without writing anything. A request is read for at most
//! `--read-timeout` and at most 1024 bytes; anything else is closed
//! unanswered. When every one of the server's 512 places is taken, the
//! connection that has waited longest without sending its request is closed
//! to make room.
//!
//! Request forms beyond portpicker's start with a word, which portserver.py
//! cannot read as an integer and closes unanswered, so a client that uses
//! one against the old server sees a failure, never a wrong answer:
//!
//! ```text
//! get PID COUNT "\n"        COUNT ports (1 to 64), all or none; reply "P1 P2 ...\n"
//! socket PID COUNT "\n"     the same, each with its listening TCP socket (bound on
//!                           [::] dual-stack, or 0.0.0.0 without IPv6) attached to
//!                           the reply with SCM_RIGHTS, in port order
//! release PID P1 P2 ... "\n" the ports go back to the pool, if PID holds every one
//!                           and none is named twice; reply: the same ports
//! ```
//!
//! A port is handed to a pid only while the pid's process lives; the
//! process is known by its pid and its start time (/proc/PID/stat), so a pid
//! the kernel reuses does not inherit the port. The connecting process's
//! pid (SO_PEERCRED) must be the pid it sends or an ancestor of it. Before a
//! port is handed out it is checked free for TCP and UDP on `0.0.0.0` and `[::]`
//! by the component (`is-free-on-wildcard`), in a sandbox that may make those
//! binds on the pool's ports and nothing else.
//!
//! Assignments are kept in a state file (temp file, fsync, rename), written
//! before any reply that depends on it; a batch whose write fails is undone
//! whole. A damaged file stops the start with a clear error, or with
//! `--accept-damaged-state` costs the ports it may hide and never hands one
//! out twice. The address, when it is a path, must be free or hold a
//! socket: anything else is refused and left as it is. SIGUSR1 prints
//! statistics to stderr; SIGTERM and SIGINT stop the server and remove its
//! socket file, and the process's earlier signal handlers are put back.

mod allocator;
mod check;
pub mod client;
mod fdpass;
mod owner;
mod pool;
mod protocol;
mod server;
mod signals;
mod state;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A socket file.
    Path(PathBuf),
    /// A name in Linux's abstract socket namespace (`@name` on the command line).
    Abstract(Vec<u8>),
}

impl Address {
    /// portpicker's convention: a leading `@` names an abstract socket.
    pub fn parse(text: &str) -> Result<Address, String> {
        match text.strip_prefix('@') {
            Some(name) if !name.is_empty() => Ok(Address::Abstract(name.as_bytes().to_vec())),
            Some(_) => Err("'@' names no abstract socket".into()),
            None if text.is_empty() => Err("an empty portserver address".into()),
            None => Ok(Address::Path(PathBuf::from(text))),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Path(path) => write!(f, "{}", path.display()),
            Address::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// How a server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens.
    pub address: Address,
    /// The ports it manages, sorted, without duplicates.
    pub pool: Vec<u16>,
    /// The pool as it was given, for the start line.
    pub pool_text: String,
    /// Where the assignments are kept.
    pub state_file: PathBuf,
    /// Start on a damaged state file, holding every port it may hide.
    pub accept_damaged_state: bool,
    /// How long a client has to send its request.
    pub read_timeout: Duration,
}

impl Config {
    /// A configuration from the command line's text.
    pub fn new(
        address: &str,
        pool: &str,
        state_file: Option<PathBuf>,
        accept_damaged_state: bool,
        read_timeout: Duration,
    ) -> Result<Config, String> {
        let address = Address::parse(address)?;
        let ports = pool::parse_ranges(pool)?;
        let state_file = state_file.unwrap_or_else(|| default_state_file(&address));
        Ok(Config {
            address,
            pool: ports,
            pool_text: pool.to_owned(),
            state_file,
            accept_damaged_state,
            read_timeout,
        })
    }
}

/// `/dev/shm/port-host-portserver-NAME.state`. The state has to outlive the
/// server, not the machine: every owner dies with the machine. tmpfs keeps
/// it across a server's restart and makes its fsync free; on a disk the
/// fsync is most of a request's time (6.7 ms measured here).
pub fn default_state_file(address: &Address) -> PathBuf {
    let name: String = address
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("/dev/shm/port-host-portserver-{name}.state"))
}

pub use server::serve;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_sign_names_an_abstract_socket_as_portpicker_reads_it() {
        assert_eq!(
            Address::parse("@unittest-portserver"),
            Ok(Address::Abstract(b"unittest-portserver".to_vec()))
        );
        assert_eq!(
            Address::parse("/run/ps.sock"),
            Ok(Address::Path("/run/ps.sock".into()))
        );
        assert!(Address::parse("@").is_err());
        assert!(Address::parse("").is_err());
        assert_eq!(
            default_state_file(&Address::parse("@unittest-portserver").unwrap()),
            PathBuf::from("/dev/shm/port-host-portserver-_unittest-portserver.state")
        );
    }
}
