//! The wire protocol: what a request may say and how a reply is written.
//! Pure functions of bytes, so that every rule is unit-tested here.

use std::fmt::Write as _;

/// The most a request may take, newline included. portpicker's request is
/// at most 11 bytes (a pid and a newline); an extended one with the most
/// ports a release may name fits too. More is junk, and the connection is
/// closed without a reply.
pub const MAX_REQUEST: usize = 1024;

/// The most ports one request may ask for or release. A `socket` request's
/// sockets travel in one SCM_RIGHTS message, which Linux caps at 253
/// descriptors; 64 keeps every form under that and under [`MAX_REQUEST`].
pub const MAX_PORTS: usize = 64;

/// One parsed request. Every form carries the pid the ports are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// portpicker's `PID\n`: one port, replied `PORT\n`.
    Legacy { pid: u32 },
    /// `get PID COUNT\n`: COUNT ports, all or none.
    Get { pid: u32, count: usize },
    /// `socket PID COUNT\n`: COUNT ports, each with its listening socket.
    Socket { pid: u32, count: usize },
    /// `release PID PORT...\n`: the ports go back to the pool, all or none.
    Release { pid: u32, ports: Vec<u16> },
}

impl Request {
    /// The pid the request is made for.
    pub fn pid(&self) -> u32 {
        match self {
            Request::Legacy { pid }
            | Request::Get { pid, .. }
            | Request::Socket { pid, .. }
            | Request::Release { pid, .. } => *pid,
        }
    }
}

/// Why a request was refused (the client only sees the connection close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// ASCII white space as Python's `int()` skips it around the digits of a
/// `bytes` value: space, tab, newline, carriage return, vertical tab, form
/// feed.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `bytes` without the white space before the request.
fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Whether `bytes` already hold a whole request: a newline after something
/// that is not white space, or more than a request may take (which can only
/// be refused).
pub fn complete(bytes: &[u8]) -> bool {
    trim_start(bytes).contains(&b'\n') || bytes.len() > MAX_REQUEST
}

/// Parses what a client sent before its newline or its end of stream.
///
/// A request is one line of ASCII. Anything after the newline is ignored, as
/// portserver.py ignores it; a client that closes its side without a
/// newline has still sent its request.
pub fn parse(bytes: &[u8]) -> Result<Request, Refused> {
    if bytes.len() > MAX_REQUEST {
        return Err(Refused(format!(
            "a request of more than {MAX_REQUEST} bytes"
        )));
    }
    let bytes = trim_start(bytes);
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    let text =
        std::str::from_utf8(line).map_err(|_| Refused("a request that is not ASCII".into()))?;
    if text
        .as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii_digit() || b == b'+' || b == b'-')
    {
        return Ok(Request::Legacy {
            pid: legacy_pid(text)?,
        });
    }
    // A CR or spaces before the newline are the sender's line ending.
    let text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let mut words = text.split(' ');
    let form = words.next().unwrap_or_default();
    let pid = pid(words
        .next()
        .ok_or_else(|| Refused(format!("'{form}' without a pid")))?)?;
    let request = match form {
        "get" | "socket" => {
            let count = count(words.next())?;
            if form == "get" {
                Request::Get { pid, count }
            } else {
                Request::Socket { pid, count }
            }
        }
        "release" => {
            let ports = words.by_ref().map(port).collect::<Result<Vec<_>, _>>()?;
            if ports.is_empty() || ports.len() > MAX_PORTS {
                return Err(Refused(format!(
                    "a release of 1 to {MAX_PORTS} ports, not {}",
                    ports.len()
                )));
            }
            // A port named twice would be given back twice: refused whole,
            // as a release of a port the asker does not hold is.
            let mut sorted = ports.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(Refused("a release that names a port twice".into()));
            }
            Request::Release { pid, ports }
        }
        _ => return Err(Refused("an unknown request".into())),
    };
    match words.next() {
        None => Ok(request),
        Some(_) => Err(Refused("more words than the request takes".into())),
    }
}

/// portpicker's request as portserver.py reads it, with Python's `int()` on
/// the bytes: white space around, an optional sign, and digits that single
/// underscores may separate. A negative pid, like 0 and 1, names no process
/// that may hold ports: the liveness check refuses it.
fn legacy_pid(text: &str) -> Result<u32, Refused> {
    let bad = || Refused(format!("'{}' is not a pid", shorten(text)));
    let number = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(bad());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if negative {
        // -0 is 0; any other negative pid is refused like pid 0.
        return Ok(0);
    }
    // Leading zeros may be many; the value must still fit.
    let value = digits.trim_start_matches('0');
    match value {
        "" => Ok(0),
        value => value.parse().map_err(|_| bad()),
    }
}

/// Digits only: no sign, no spaces, nothing above `u32`. The liveness check
/// refuses pid 0, pid 1 and pids no process has.
fn pid(text: &str) -> Result<u32, Refused> {
    digits(text)
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| Refused(format!("'{}' is not a pid", shorten(text))))
}

fn count(text: Option<&str>) -> Result<usize, Refused> {
    let text = text.ok_or_else(|| Refused("no count of ports".into()))?;
    digits(text)
        .and_then(|digits| digits.parse().ok())
        .filter(|count| (1..=MAX_PORTS).contains(count))
        .ok_or_else(|| {
            Refused(format!(
                "'{}' is not a count of 1 to {MAX_PORTS} ports",
                shorten(text)
            ))
        })
}

fn port(text: &str) -> Result<u16, Refused> {
    digits(text)
        .and_then(|digits| digits.parse().ok())
        .filter(|&port| port != 0)
        .ok_or_else(|| Refused(format!("'{}' is not a port", shorten(text))))
}

fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// A culprit short enough for a log line.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(24) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The reply to a request that succeeded: its ports separated by spaces and
/// a newline, which for one port is portpicker's `PORT\n`. A release is
/// answered with the ports it released.
pub fn reply(ports: &[u16]) -> String {
    let mut line = String::with_capacity(6 * ports.len());
    for (i, port) in ports.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(line, "{port}");
    }
    line.push('\n');
    line
}

/// Reads a reply: the ports it names, or `None` if it is not one.
pub fn parse_reply(bytes: &[u8]) -> Option<Vec<u16>> {
    let text = std::str::from_utf8(bytes.strip_suffix(b"\n")?).ok()?;
    text.split(' ').map(|word| port(word).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portpickers_request_is_a_pid_and_a_newline() {
        assert_eq!(parse(b"1234\n"), Ok(Request::Legacy { pid: 1234 }));
        // The Go client and some wrappers close without a newline.
        assert_eq!(parse(b"1234"), Ok(Request::Legacy { pid: 1234 }));
        assert_eq!(parse(b"0042\nignored"), Ok(Request::Legacy { pid: 42 }));
    }

    #[test]
    fn a_pid_is_read_as_portserver_pys_int_reads_the_bytes() {
        // Every one of these is int(client_data) == 42 in portserver.py.
        for accepted in [
            &b" 42\n"[..],
            b"42\r\n",
            b"\t42\x0b\x0c\n",
            b"+42\n",
            b"4_2\n",
            b"0042\n",
            b"42 \n",
            b"\n42\n",
            b"42\n\n",
        ] {
            assert_eq!(
                parse(accepted),
                Ok(Request::Legacy { pid: 42 }),
                "{:?}",
                String::from_utf8_lossy(accepted)
            );
        }
        // int() reads these as 0 or below: no process may hold ports.
        for no_owner in [&b"-5\n"[..], b"-0\n", b"0\n", b"00\n", b"0_0\n"] {
            assert_eq!(parse(no_owner), Ok(Request::Legacy { pid: 0 }));
        }
        assert!(complete(b" 42\r\n"));
        assert!(!complete(b"\n\n"), "white space alone is no request yet");
    }

    #[test]
    fn a_pid_that_int_refuses_or_that_passes_u32_is_refused() {
        for junk in [
            &b"5x\n"[..],
            b"abc\n",
            b"\n",
            b"",
            b"4__2\n",
            b"_42\n",
            b"42_\n",
            b"0x2a\n",
            b"4 2\n",
            b"\xa042\n",
            b"\x1c42\n",
            b"18446744073709551616\n",
            b"4294967296\n",
            b"\xff\xfe\n",
            b"\x005\n",
        ] {
            assert!(parse(junk).is_err(), "{junk:?}");
        }
        assert_eq!(
            parse(b"4294967295\n"),
            Ok(Request::Legacy { pid: u32::MAX })
        );
    }

    #[test]
    fn a_release_that_names_a_port_twice_is_refused() {
        assert!(parse(b"release 7 15000 15000\n").is_err());
        assert!(parse(b"release 7 15000 15001 15000\n").is_err());
    }

    #[test]
    fn extended_forms_start_with_a_word_portserver_py_cannot_read_as_an_int() {
        assert_eq!(parse(b"get 7 3\n"), Ok(Request::Get { pid: 7, count: 3 }));
        assert_eq!(
            parse(b"socket 7 1\n"),
            Ok(Request::Socket { pid: 7, count: 1 })
        );
        assert_eq!(
            parse(b"release 7 15000 15001\n"),
            Ok(Request::Release {
                pid: 7,
                ports: vec![15000, 15001]
            })
        );
        for junk in [
            &b"get 7\n"[..],
            b"get 7 0\n",
            b"get 7 65\n",
            b"get 7 3 4\n",
            b"get  7 3\n",
            b"GET 7 3\n",
            b"release 7\n",
            b"release 7 0\n",
            b"release 7 65536\n",
            b"socket -1 1\n",
            b"hello\n",
        ] {
            assert!(parse(junk).is_err(), "{:?}", String::from_utf8_lossy(junk));
        }
    }

    #[test]
    fn a_request_past_the_bound_is_complete_and_refused() {
        let junk = vec![b'7'; MAX_REQUEST + 1];
        assert!(complete(&junk));
        assert!(parse(&junk).is_err());
        assert!(!complete(b"123"));
        assert!(complete(b"123\n"));
    }

    #[test]
    fn one_port_is_replied_as_portpicker_reads_it() {
        assert_eq!(reply(&[15000]), "15000\n");
        assert_eq!(reply(&[15000, 15001]), "15000 15001\n");
        assert_eq!(parse_reply(b"15000 15001\n"), Some(vec![15000, 15001]));
        assert_eq!(parse_reply(b"15000"), None);
        assert_eq!(parse_reply(b"x\n"), None);
    }
}
