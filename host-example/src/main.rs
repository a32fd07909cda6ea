//! `port-host`: the hbutils-port component from the command line, inside a
//! loopback-only wasmtime sandbox.

mod args;

use args::{Command, Options, USAGE};
use port_host::{
    Candidates, ErrorCode, Limits, NetworkPolicy, PortHost, Stderr, describe, error_name,
};
use std::process::ExitCode;

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
            if options.json {
                println!("{{\"port\":{port}}}");
            } else {
                println!("{port}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => component_error(options, &error),
    })
}

fn session(options: &Options) -> wasmtime::Result<port_host::Session> {
    let host = match &options.component {
        Some(path) => PortHost::from_file(path, Limits::default())?,
        None => PortHost::new()?,
    };
    let network = if options.deny_network {
        NetworkPolicy::Denied
    } else {
        NetworkPolicy::LoopbackTcp
    };
    host.session(network, Stderr::Inherit)
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
