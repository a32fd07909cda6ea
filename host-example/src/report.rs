//! What `port-host` prints: one serde type per answer, shown as plain text or
//! as JSON, and the words for the component's errors.

use port_host::{ErrorCode, FamilyStatus, PortStatus};
use serde::Serialize;
use std::fmt;

/// `is-free-port`'s answer.
#[derive(Serialize)]
pub struct Freedom {
    pub port: u16,
    pub free: bool,
}

/// A port found, reserved or served on.
#[derive(Serialize)]
pub struct Port {
    pub port: u16,
}

/// Several ports found or reserved: one per line, or `{"ports":[...]}`, an
/// object like every other answer, so a reader can tell it from a failure.
#[derive(Serialize)]
pub struct Ports {
    pub ports: Vec<u16>,
}

/// `probe-port`'s answer.
#[derive(Serialize)]
pub struct Probe {
    pub port: u16,
    pub ipv4: &'static str,
    pub ipv6: &'static str,
}

/// Any error: the line on stderr, and with `--json` this object on stdout.
#[derive(Serialize)]
pub struct Failure {
    pub error: String,
    /// The WIT `error-code` case, or `host` for the host's own errors
    /// (a deadline, a quota, an unreadable component).
    pub code: &'static str,
}

impl fmt::Display for Freedom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.free)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, port) in self.ports.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{port}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipv4 {}, ipv6 {}", self.ipv4, self.ipv6)
    }
}

impl Probe {
    pub fn new(port: u16, status: PortStatus) -> Self {
        Probe {
            port,
            ipv4: family_status_name(status.ipv4),
            ipv6: family_status_name(status.ipv6),
        }
    }
}

impl Failure {
    /// The component's answer, in words for people.
    pub fn component(error: &ErrorCode) -> Self {
        let (error, code) = match error {
            ErrorCode::AccessDenied => (
                "access denied: the host refused a loopback TCP socket, so the port's state \
                 is unknown"
                    .to_owned(),
                "access-denied",
            ),
            ErrorCode::NoFreePort(message) => (message.clone(), "no-free-port"),
            ErrorCode::InvalidArgument(message) => {
                (format!("invalid argument: {message}"), "invalid-argument")
            }
            ErrorCode::Other(name) => (format!("socket error: {name}"), "other"),
        };
        Failure { error, code }
    }

    /// The host's error (or bad input): wasmtime's errors can span lines (a
    /// trap's backtrace) and the contract is one line.
    pub fn host(error: &wasmtime::Error) -> Self {
        let text = format!("{error:#}");
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        Failure {
            error: lines.join(" "),
            code: "host",
        }
    }
}

/// The WIT name of a family's status.
fn family_status_name(status: FamilyStatus) -> &'static str {
    match status {
        FamilyStatus::Free => "free",
        FamilyStatus::InUse => "in-use",
        FamilyStatus::Denied => "denied",
        FamilyStatus::Unsupported => "unsupported",
    }
}

/// `text` on one line: a message may quote the user's argument, which may
/// hold a line break, and the error contract is one line, so control
/// characters are shown escaped.
pub fn single_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            let plain = (!c.is_control()).then_some(c);
            escaped.into_iter().flatten().chain(plain)
        })
        .collect()
}
