//! `port-host`: the hbutils-port component from the command line, inside a
//! loopback-only wasmtime sandbox. Each command maps to one session call;
//! every call runs on the async path, so `--timeout` bounds host calls too.

mod cli;
mod report;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command, Run, Sandbox};
use port_host::{AsyncSession, ErrorCode, Limits, NetworkPolicy, PortHost, Stderr};
use report::{Failure, Freedom, Port, Ports, Probe};
use serde::Serialize;
use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

/// Exit status for any error: bad input, a refused socket, a failed search.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version: clap's own text, exit 0.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => return fail(None, &cli::one_line(&error)),
    };
    let json = cli.command.sandbox().is_some_and(|sandbox| sandbox.json);
    // One thread does for a command's one session. The port server's
    // connections (accept, read, peer credentials, reply) run beside its
    // allocator instead.
    #[cfg(target_os = "linux")]
    let serving = matches!(cli.command, Command::Portserver(_));
    #[cfg(not(target_os = "linux"))]
    let serving = false;
    let mut builder = if serving {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(None, &format!("cannot start the async runtime: {error}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            let failure = Failure::host(&error);
            fail(json.then_some(&failure), &failure.error)
        }
    }
}

async fn run(command: Command) -> wasmtime::Result<ExitCode> {
    match command {
        Command::IsFreePort { port, run } => {
            let answer = session(&run, 0).await?.is_free_port(port).await?;
            Ok(match answer {
                Ok(free) => {
                    print(&run.sandbox, &Freedom { port, free })?;
                    ExitCode::from(if free { 0 } else { 1 })
                }
                Err(error) => component_error(&run.sandbox, &error),
            })
        }
        Command::GetFreePort { search, count, run } => {
            let ports = search.ports.as_ref();
            let strict = !search.no_strict;
            // Ports the OS picks for a count stay bound until the call
            // returns, a live resource each, as reservations are.
            let mut session = session(&run, count.count.unwrap_or(0)).await?;
            match count.count {
                None => {
                    let answer = session.get_free_port(ports, strict).await?;
                    answered(&run.sandbox, answer.map(|port| Port { port }))
                }
                Some(count) => {
                    let answer = session.get_free_ports(ports, count, strict).await?;
                    answered(&run.sandbox, answer.map(|ports| Ports { ports }))
                }
            }
        }
        Command::ProbePort { port, run } => {
            let answer = session(&run, 0).await?.probe_port(port).await?;
            answered(&run.sandbox, answer.map(|status| Probe::new(port, status)))
        }
        Command::Reserve {
            search,
            count,
            hold_for,
            run,
        } => {
            let (ports, strict) = (search.ports.as_ref(), !search.no_strict);
            let mut session = session(&run, count.count.unwrap_or(1)).await?;
            let reservations = match count.count {
                None => session
                    .reserve_port(ports, strict)
                    .await?
                    .map(|one| vec![one]),
                Some(count) => session.reserve_ports(ports, count, strict).await?,
            };
            let reservations = match reservations {
                Ok(reservations) => reservations,
                Err(error) => return Ok(component_error(&run.sandbox, &error)),
            };
            let mut held = Vec::with_capacity(reservations.len());
            for reservation in &reservations {
                match session.reservation_port(reservation).await? {
                    Ok(port) => held.push(port),
                    Err(error) => {
                        wasmtime::bail!("a fresh reservation has already ended ({error:?})")
                    }
                }
            }
            match count.count {
                None => print(&run.sandbox, &Port { port: held[0] })?,
                Some(_) => print(&run.sandbox, &Ports { ports: held })?,
            }
            match hold_for {
                Some(duration) => tokio::time::sleep(duration).await,
                None => stdin_closed().await,
            }
            for reservation in &reservations {
                if let Err(error) = session.release(reservation).await? {
                    wasmtime::bail!("the reservation ended before its release ({error:?})");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(target_os = "linux")]
        Command::Portserver(options) => Ok(portserver(options).await),
        #[cfg(target_os = "linux")]
        Command::PickPort(options) => Ok(pick_port(options)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "port-host", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(target_os = "linux")]
async fn portserver(options: cli::Portserver) -> ExitCode {
    use port_host::portserver::{self, Config};
    let config = Config::new(
        &options.address,
        &options.pool,
        options.state_file,
        options.accept_damaged_state,
        options.read_timeout,
    );
    let served = match config {
        Ok(config) => portserver::serve(config).await,
        Err(error) => Err(error),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(None, &error),
    }
}

#[cfg(target_os = "linux")]
fn pick_port(options: cli::PickPort) -> ExitCode {
    use port_host::portserver::{Address, client};
    let address = options
        .address
        .or_else(|| std::env::var("PORTSERVER_ADDRESS").ok())
        .unwrap_or_else(|| "@unittest-portserver".into());
    let server = match Address::parse(&address) {
        Ok(server) => server,
        Err(error) => return fail(None, &error),
    };
    // The ports are for whoever ran this command: it exits at once.
    let pid = options
        .pid
        .unwrap_or_else(std::os::unix::process::parent_id);
    let answer = match (options.release, options.count) {
        (Some(ports), _) => client::release(&server, pid, &ports).map(|()| Vec::new()),
        (None, None) => client::pick_unused_port(&server, pid).map(|port| vec![port]),
        (None, Some(count)) => client::get_ports(&server, pid, count),
    };
    match answer {
        Ok(ports) => {
            let mut stdout = io::stdout().lock();
            let printed = ports.iter().try_for_each(|port| writeln!(stdout, "{port}"));
            match printed.and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(None, &format!("cannot print the ports: {error}")),
            }
        }
        Err(error) => fail(None, &format!("{address}: {error}")),
    }
}

/// The component's answer printed, or its error reported.
fn answered<T: Serialize + Display>(
    sandbox: &Sandbox,
    answer: Result<T, ErrorCode>,
) -> wasmtime::Result<ExitCode> {
    Ok(match answer {
        Ok(value) => {
            print(sandbox, &value)?;
            ExitCode::SUCCESS
        }
        Err(error) => component_error(sandbox, &error),
    })
}

/// The answer on a line of its own (or as JSON), flushed at once: for
/// `reserve` a script reading it is waiting while this process keeps running.
fn print<T: Serialize + Display>(sandbox: &Sandbox, value: &T) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    if sandbox.json {
        serde_json::to_writer(&mut stdout, value)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{value}")?;
    }
    stdout.flush()
}

/// Reading to the end is the whole wait; what arrives is of no interest, and
/// a read error means stdin is gone just as well.
async fn stdin_closed() {
    let _ =
        tokio::task::spawn_blocking(|| io::copy(&mut io::stdin().lock(), &mut io::sink())).await;
}

fn network(sandbox: &Sandbox) -> NetworkPolicy {
    match (sandbox.deny_network, sandbox.allow_ports) {
        (true, _) => NetworkPolicy::denied(),
        (false, Some(block)) => NetworkPolicy::loopback().confined_to(block),
        (false, None) => NetworkPolicy::loopback(),
    }
}

fn limits(sandbox: &Sandbox) -> Limits {
    Limits::default().with_call_timeout(sandbox.timeout)
}

/// A session whose store may hold `sockets` sockets at once (each a live
/// resource: a reservation, or a port the OS picked for `--count`) beyond
/// what every session may.
async fn session(run: &Run, ports: u32) -> wasmtime::Result<AsyncSession> {
    let mut limits = limits(&run.sandbox);
    let network = network(&run.sandbox);
    let sockets = ports as usize * network.sockets_per_reservation();
    limits.store.resources = limits.store.resources.max(sockets + 16);
    let host = match &run.component {
        Some(path) => PortHost::from_file(path, limits)?,
        // One component per process: no compiler needed to start it.
        None => PortHost::embedded_load_only(limits)?,
    };
    host.async_session(network, Stderr::Inherit).await
}

fn component_error(sandbox: &Sandbox, error: &ErrorCode) -> ExitCode {
    let failure = Failure::component(error);
    fail(sandbox.json.then_some(&failure), &failure.error)
}

/// One `error: …` line on stderr (and the JSON object on stdout), exit 2.
fn fail(json: Option<&Failure>, message: &str) -> ExitCode {
    if let Some(failure) = json {
        let _ = print_json(failure);
    }
    let line = report::single_line(message);
    eprintln!("error: {line}");
    ExitCode::from(EXIT_ERROR)
}

fn print_json(failure: &Failure) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, failure)?;
    writeln!(stdout)
}
