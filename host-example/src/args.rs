//! `port-host`'s command line: syntax only. Whether a range or a port makes
//! sense is the component's call, so the rules live in one place.

use port_host::{Candidates, PortRange};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: port-host is-free-port PORT [OPTIONS]
       port-host get-free-port [PORTS] [--no-strict] [OPTIONS]
       port-host probe-port PORT [OPTIONS]
       port-host reserve [PORTS] [--no-strict] [--hold-for SECS] [OPTIONS]
       port-host serve-echo [PORTS] [--no-strict] [OPTIONS]

  is-free-port    prints true or false; exit 0 free, 1 in use, 2 error
  get-free-port   prints the first free port of PORTS; exit 0, 2 on error
  probe-port      prints what a bind finds on each family, e.g.
                  \"ipv4 free, ipv6 unsupported\"; exit 0, 2 on error
  reserve         reserves the first free port of PORTS, prints it, and holds
                  it (a listening socket) until stdin closes, or for SECS
  serve-echo      runs the echo-server example composed with the component:
                  prints the port it reserved, then echoes TCP connections

PORTS:  START..END         END exclusive, like Python's range(START, END)
        START..END:STEP    STEP may be negative: 9000..8000:-1
        P1,P2,...          these ports, in this order
Only ports >= 1024 are used. Without PORTS (or without any >= 1024) strict mode
is switched off with a warning and the OS picks a port.

OPTIONS:
  --no-strict        fall back to a port the OS picks when none of PORTS is free
  --hold-for SECS    reserve: hold for SECS seconds instead of until stdin closes
  --json             print a JSON object on stdout
  --deny-network     run the component with no network at all
  --component FILE   run another build of the component instead of the embedded
                     one (not for serve-echo, which runs the embedded composition)
  -h, --help         print this help";

#[derive(Debug, PartialEq)]
pub enum Command {
    IsFreePort(u16),
    GetFreePort {
        ports: Option<Candidates>,
        strict: bool,
    },
    ProbePort(u16),
    Reserve {
        ports: Option<Candidates>,
        strict: bool,
        /// `None`: until stdin closes.
        hold_for: Option<Duration>,
    },
    ServeEcho {
        ports: Option<Candidates>,
        strict: bool,
    },
    Help,
}

const COMMANDS: &str = "is-free-port, get-free-port, probe-port, reserve or serve-echo";

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub json: bool,
    pub deny_network: bool,
    pub component: Option<PathBuf>,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<(Command, Options), String> {
    let mut args = args.into_iter();
    let mut options = Options::default();
    let mut strict = true;
    let mut hold_for = None;
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok((Command::Help, options)),
            "--json" => options.json = true,
            "--deny-network" => options.deny_network = true,
            "--no-strict" => strict = false,
            "--component" => match args.next() {
                Some(file) => options.component = Some(file.into()),
                None => return Err("--component needs a FILE".into()),
            },
            "--hold-for" => match args.next() {
                Some(seconds) => hold_for = Some(parse_seconds(&seconds)?),
                None => return Err("--hold-for needs SECS".into()),
            },
            flag if flag.starts_with("--") => return Err(format!("unknown option '{flag}'")),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let name = positional.next();
    let name = name.as_deref();
    let mut ports = || positional.next().map(|p| parse_ports(&p)).transpose();
    let command = match name {
        Some("is-free-port") => Command::IsFreePort(needs_port(name, positional.next())?),
        Some("probe-port") => Command::ProbePort(needs_port(name, positional.next())?),
        Some("get-free-port") => Command::GetFreePort {
            ports: ports()?,
            strict,
        },
        Some("reserve") => Command::Reserve {
            ports: ports()?,
            strict,
            hold_for,
        },
        Some("serve-echo") => Command::ServeEcho {
            ports: ports()?,
            strict,
        },
        Some(other) => return Err(format!("unknown command '{other}' ({COMMANDS})")),
        None => return Err(format!("a command is needed ({COMMANDS}); see --help")),
    };
    let takes_candidates = !matches!(command, Command::IsFreePort(_) | Command::ProbePort(_));
    if !strict && !takes_candidates {
        return Err("--no-strict applies to commands that search PORTS".into());
    }
    if hold_for.is_some() && !matches!(command, Command::Reserve { .. }) {
        return Err("--hold-for applies to reserve only".into());
    }
    if options.component.is_some() && matches!(command, Command::ServeEcho { .. }) {
        return Err("--component does not apply to serve-echo".into());
    }
    match positional.next() {
        Some(extra) => Err(format!("unexpected argument '{extra}'")),
        None => Ok((command, options)),
    }
}

fn needs_port(command: Option<&str>, port: Option<String>) -> Result<u16, String> {
    match port {
        Some(port) => parse_port(&port),
        None => Err(format!("{} needs a PORT", command.unwrap_or_default())),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not a port number (0 to 65535)"))
}

/// `START..END`, `START..END:STEP` or `P1,P2,...`.
pub fn parse_ports(text: &str) -> Result<Candidates, String> {
    let Some((start, rest)) = text.split_once("..") else {
        return text
            .split(',')
            .map(parse_port)
            .collect::<Result<_, _>>()
            .map(Candidates::Explicit);
    };
    let (end, step) = rest.split_once(':').unwrap_or((rest, "1"));
    let bound = |what: &str, value: &str| {
        value
            .parse::<u32>()
            .map_err(|_| format!("'{value}' is not a valid range {what} in '{text}'"))
    };
    Ok(Candidates::Range(PortRange {
        start: bound("start", start)?,
        end: bound("end", end)?,
        step: step
            .parse()
            .map_err(|_| format!("'{step}' is not a valid range step in '{text}'"))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<(Command, Options), String> {
        parse(line.split_whitespace().map(String::from))
    }

    fn range(start: u32, end: u32, step: i32) -> Option<Candidates> {
        Some(Candidates::Range(PortRange { start, end, step }))
    }

    #[test]
    fn ranges_lists_and_steps_parse() {
        assert_eq!(parse_ports("8000..8100"), Ok(range(8000, 8100, 1).unwrap()));
        assert_eq!(
            parse_ports("9000..8000:-10"),
            Ok(range(9000, 8000, -10).unwrap())
        );
        assert_eq!(
            parse_ports("8000,8080,9000"),
            Ok(Candidates::Explicit(vec![8000, 8080, 9000]))
        );
        assert_eq!(parse_ports("8000"), Ok(Candidates::Explicit(vec![8000])));
    }

    #[test]
    fn malformed_ports_are_refused_with_the_culprit_named() {
        for (text, culprit) in [
            ("80a0,8001", "'80a0'"),
            ("70000", "'70000'"),
            ("8000,,8001", "''"),
            ("abc..9000", "'abc'"),
            ("8000..", "''"),
            ("8000..9000:x", "'x'"),
            ("-5..100", "'-5'"),
        ] {
            let error = parse_ports(text).unwrap_err();
            assert!(error.contains(culprit), "{text}: {error}");
        }
    }

    #[test]
    fn commands_and_flags_parse_in_any_order() {
        assert_eq!(
            args("is-free-port 8080").unwrap().0,
            Command::IsFreePort(8080)
        );
        let (command, options) =
            args("--json get-free-port 8000..8100 --no-strict --deny-network").unwrap();
        assert_eq!(
            command,
            Command::GetFreePort {
                ports: range(8000, 8100, 1),
                strict: false
            }
        );
        assert_eq!(
            options,
            Options {
                json: true,
                deny_network: true,
                component: None
            }
        );
        let (_, options) = args("get-free-port --component other.wasm").unwrap();
        assert_eq!(options.component, Some("other.wasm".into()));
        assert_eq!(
            args("get-free-port").unwrap().0,
            Command::GetFreePort {
                ports: None,
                strict: true
            }
        );
        assert_eq!(args("get-free-port --help").unwrap().0, Command::Help);
        assert_eq!(args("probe-port 8080").unwrap().0, Command::ProbePort(8080));
        assert_eq!(
            args("reserve 8000..8100 --hold-for 1.5 --no-strict")
                .unwrap()
                .0,
            Command::Reserve {
                ports: range(8000, 8100, 1),
                strict: false,
                hold_for: Some(Duration::from_millis(1500)),
            }
        );
        assert_eq!(
            args("reserve").unwrap().0,
            Command::Reserve {
                ports: None,
                strict: true,
                hold_for: None,
            }
        );
        assert_eq!(
            args("serve-echo 9000,9001").unwrap().0,
            Command::ServeEcho {
                ports: Some(Candidates::Explicit(vec![9000, 9001])),
                strict: true,
            }
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for line in [
            "",
            "frobnicate 8000",
            "is-free-port",
            "is-free-port 70000",
            "is-free-port abc",
            "is-free-port 8000 8001",
            "is-free-port 8000 --no-strict",
            "get-free-port 8000..8100 extra",
            "get-free-port --verbose",
            "get-free-port --component",
            "probe-port",
            "probe-port 8000 --no-strict",
            "get-free-port --hold-for 5",
            "reserve --hold-for",
            "reserve --hold-for -1",
            "reserve --hold-for soon",
            "reserve 8000..8100 8200",
            "serve-echo --component other.wasm",
        ] {
            assert!(args(line).is_err(), "'{line}' was accepted");
        }
    }
}
