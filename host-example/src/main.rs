//! `port-host`: the hbutils-port component from the command line, inside a
//! loopback-only wasmtime sandbox.

mod args;

use args::{Command, Options, USAGE};
use port_host::{
    Candidates, EchoServer, ErrorCode, Limits, NetworkPolicy, PortHost, Stderr, describe,
    error_name, family_status_name,
};
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Exit status for any error: bad input, a refused socket, a failed search.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let (command, options) = match args::parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => return fail(&message),
    };
    let outcome = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::IsFreePort(port) => is_free_port(&options, port),
        Command::GetFreePort { ports, strict } => get_free_port(&options, ports.as_ref(), strict),
        Command::ProbePort(port) => probe_port(&options, port),
        Command::Reserve {
            ports,
            strict,
            hold_for,
        } => reserve(&options, ports.as_ref(), strict, hold_for),
        Command::ServeEcho { ports, strict } => serve_echo(&options, ports.as_ref(), strict),
    };
    outcome.unwrap_or_else(|error| fail(&format!("{error:#}")))
}

fn is_free_port(options: &Options, port: u16) -> wasmtime::Result<ExitCode> {
    let answer = session(options)?.is_free_port(port)?;
    Ok(match answer {
        Ok(free) => {
            if options.json {
                println!("{{\"port\":{port},\"free\":{free}}}");
            } else {
                println!("{free}");
            }
            ExitCode::from(if free { 0 } else { 1 })
        }
        Err(error) => component_error(options, &error),
    })
}

fn get_free_port(
    options: &Options,
    ports: Option<&Candidates>,
    strict: bool,
) -> wasmtime::Result<ExitCode> {
    let answer = session(options)?.get_free_port(ports, strict)?;
    Ok(match answer {
        Ok(port) => {
            print_port(options, port)?;
            ExitCode::SUCCESS
        }
        Err(error) => component_error(options, &error),
    })
}

fn probe_port(options: &Options, port: u16) -> wasmtime::Result<ExitCode> {
    let answer = session(options)?.probe_port(port)?;
    Ok(match answer {
        Ok(status) => {
            let (ipv4, ipv6) = (
                family_status_name(status.ipv4),
                family_status_name(status.ipv6),
            );
            if options.json {
                println!("{{\"port\":{port},\"ipv4\":\"{ipv4}\",\"ipv6\":\"{ipv6}\"}}");
            } else {
                println!("ipv4 {ipv4}, ipv6 {ipv6}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => component_error(options, &error),
    })
}

/// Reserves a port, says which, and holds it for `hold_for` or, without it,
/// until stdin closes; then releases it.
fn reserve(
    options: &Options,
    ports: Option<&Candidates>,
    strict: bool,
    hold_for: Option<Duration>,
) -> wasmtime::Result<ExitCode> {
    let mut session = session(options)?;
    let reservation = match session.reserve_port(ports, strict)? {
        Ok(reservation) => reservation,
        Err(error) => return Ok(component_error(options, &error)),
    };
    let port = match session.reservation_port(&reservation)? {
        Ok(port) => port,
        Err(error) => wasmtime::bail!("a fresh reservation has already ended ({error:?})"),
    };
    print_port(options, port)?;
    match hold_for {
        Some(duration) => thread::sleep(duration),
        None => wait_for_stdin_to_close(),
    }
    if let Err(error) = session.release(&reservation)? {
        wasmtime::bail!("the reservation ended before its release ({error:?})");
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_for_stdin_to_close() {
    // Reading to the end is the whole wait; what arrives is of no interest,
    // and a read error means stdin is gone just as well.
    let (closed, wait) = mpsc::channel();
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = closed.send(());
    });
    let _ = wait.recv();
}

/// Runs the composed echo server until the process is stopped.
fn serve_echo(
    options: &Options,
    ports: Option<&Candidates>,
    strict: bool,
) -> wasmtime::Result<ExitCode> {
    let mut server = match EchoServer::start(network(options), ports, strict)? {
        Ok(server) => server,
        Err(error) => return Ok(component_error(options, &error)),
    };
    print_port(options, server.port())?;
    match server.serve(None)? {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(code) => wasmtime::bail!("the echo server stopped: {code}"),
    }
}

/// The port on a line of its own (or as JSON), flushed at once: for
/// `reserve` and `serve-echo` a script reading it is waiting while this
/// process keeps running.
fn print_port(options: &Options, port: u16) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    if options.json {
        writeln!(stdout, "{{\"port\":{port}}}")?;
    } else {
        writeln!(stdout, "{port}")?;
    }
    stdout.flush()
}

fn network(options: &Options) -> NetworkPolicy {
    if options.deny_network {
        NetworkPolicy::Denied
    } else {
        NetworkPolicy::LoopbackTcp
    }
}

fn session(options: &Options) -> wasmtime::Result<port_host::Session> {
    let host = match &options.component {
        Some(path) => PortHost::from_file(path, Limits::default())?,
        None => PortHost::new()?,
    };
    host.session(network(options), Stderr::Inherit)
}

fn component_error(options: &Options, error: &ErrorCode) -> ExitCode {
    let message = describe(error);
    if options.json {
        println!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            error_name(error),
            json_escape(&message)
        );
    }
    fail(&message)
}

/// Errors from wasmtime can span lines (a trap's backtrace); the contract is
/// one line.
fn fail(message: &str) -> ExitCode {
    let line: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("error: {}", line.join(" "));
    ExitCode::from(EXIT_ERROR)
}

fn json_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if u32::from(c) < 0x20 => escaped.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}
