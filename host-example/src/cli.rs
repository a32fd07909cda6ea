//! `port-host`'s command line, as a type: subcommands are variants, options
//! are fields, doc comments are the help. Syntax only: whether a range or a
//! port makes sense is the component's call, so the rules live in one place.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use port_host::{Candidates, PortBlock, PortRange};
use std::path::PathBuf;
use std::time::Duration;

/// The hbutils-port component from the command line, inside a loopback-only
/// wasmtime sandbox.
///
/// PORTS is START..END (END exclusive, like Python's range), START..END:STEP
/// (STEP may be negative: 9000..8000:-1) or a list P1,P2,... in the order to
/// try. Only ports >= 1024 are used; without PORTS, or without any >= 1024,
/// strict mode is switched off with a warning and the OS picks a port.
///
/// Exit status: 0 success (is-free-port: free), 1 is-free-port: in use,
/// 2 any error, as one `error: ...` line on stderr.
#[derive(Debug, Parser)]
#[command(name = "port-host", version, max_term_width = 100)]
pub struct Cli {
    /// What to ask.
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand each.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print true (exit 0) when PORT is free on loopback, false (exit 1) when
    /// it is in use.
    IsFreePort {
        /// The port to check.
        #[arg(value_name = "PORT", value_parser = parse_port)]
        port: u16,
        #[command(flatten)]
        run: Run,
    },
    /// Print the first free port of PORTS (with --count N, the first N
    /// distinct free ports, one per line).
    GetFreePort {
        #[command(flatten)]
        search: Search,
        #[command(flatten)]
        count: Count,
        #[command(flatten)]
        run: Run,
    },
    /// Print what a bind finds on each loopback family, e.g. "ipv4 free,
    /// ipv6 unsupported".
    ProbePort {
        /// The port to probe.
        #[arg(value_name = "PORT", value_parser = parse_port)]
        port: u16,
        #[command(flatten)]
        run: Run,
    },
    /// Reserve the first free port of PORTS, print it and hold it (a
    /// listening socket) until stdin closes, or for SECS. With --count N,
    /// reserve N ports (all or none), print one per line and hold them all.
    Reserve {
        #[command(flatten)]
        search: Search,
        #[command(flatten)]
        count: Count,
        /// Hold for SECS seconds instead of until stdin closes.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        hold_for: Option<Duration>,
        #[command(flatten)]
        run: Run,
    },
    /// Serve ports to portpicker clients (PORTSERVER_ADDRESS): a drop-in for
    /// portpicker's portserver.py whose ports never collide between live
    /// processes. Runs until SIGTERM or SIGINT; SIGUSR1 prints statistics.
    #[cfg(target_os = "linux")]
    Portserver(Portserver),
    /// Ask a port server for ports, printed one per line: for the process
    /// that ran this command (or --pid), which holds them until it exits.
    #[cfg(target_os = "linux")]
    PickPort(PickPort),
    /// Print a completion script for SHELL.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// `port-host portserver`'s options: portserver.py's names (kebab-case
/// aliases too) and defaults.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct Portserver {
    /// The AF_UNIX socket to listen on: a path, or @NAME for an abstract
    /// socket.
    #[arg(
        long = "portserver_address",
        visible_alias = "portserver-address",
        alias = "portserver_unix_socket_address",
        value_name = "ADDRESS",
        default_value = "@unittest-portserver"
    )]
    pub address: String,
    /// The ports to hand out: comma-separated inclusive ranges N-P.
    #[arg(
        long = "portserver_static_pool",
        visible_alias = "portserver-static-pool",
        value_name = "N-P,...",
        default_value = "15000-24999"
    )]
    pub pool: String,
    /// Where the assignments are kept [default:
    /// /dev/shm/port-host-portserver-ADDRESS.state].
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Start even on a damaged state file: every port it may hide is held by
    /// an unknown owner and never handed out (a warning says how many).
    #[arg(long)]
    pub accept_damaged_state: bool,
    /// How long a client has to send its request before it is closed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_timeout)]
    pub read_timeout: Duration,
}

/// `port-host pick-port`'s options.
#[cfg(target_os = "linux")]
#[derive(Debug, Args)]
pub struct PickPort {
    /// The server [default: $PORTSERVER_ADDRESS, else @unittest-portserver].
    #[arg(
        long = "portserver_address",
        visible_alias = "portserver-address",
        value_name = "ADDRESS"
    )]
    pub address: Option<String>,
    /// The process the ports are for [default: the one that ran this
    /// command]. The server refuses a pid outside this command's own line
    /// of descent.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Ask for N ports at once (1 to 64), all or none.
    #[arg(long, value_name = "N", conflicts_with = "release")]
    pub count: Option<usize>,
    /// Give these ports back instead (P1,P2,...); the pid must hold them all.
    #[arg(long, value_name = "PORTS", value_delimiter = ',', value_parser = parse_port)]
    pub release: Option<Vec<u16>>,
}

/// Where to look, and what to do when nothing there is free.
#[derive(Debug, Args)]
pub struct Search {
    /// The candidates, in order.
    #[arg(value_name = "PORTS", value_parser = parse_ports)]
    pub ports: Option<Candidates>,
    /// Fall back to a port the OS picks when none of PORTS is free.
    #[arg(long)]
    pub no_strict: bool,
}

/// How many ports to find or reserve at once.
#[derive(Debug, Args)]
pub struct Count {
    /// Find or reserve N distinct ports (1 to 64512); printed one per line,
    /// or as {"ports":[...]} with --json.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u32>,
}

/// How a command that runs a component runs it.
#[derive(Debug, Args)]
pub struct Run {
    /// Run another build of the component instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub component: Option<PathBuf>,
    #[command(flatten)]
    pub sandbox: Sandbox,
}

/// The sandbox and the output, for every command that runs a component.
#[derive(Debug, Args)]
pub struct Sandbox {
    /// Print a JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run the component with no network at all.
    #[arg(long, conflicts_with = "allow_ports")]
    pub deny_network: bool,
    /// Confine the component to the ports START..END (END exclusive): every
    /// bind or listen elsewhere, port 0 included, is refused.
    #[arg(long, value_name = "START..END", value_parser = parse_block)]
    pub allow_ports: Option<PortBlock>,
    /// Stop any call of the component that runs longer than SECS (more than
    /// zero), a host call included. A value past what the clock can count
    /// means no deadline in practice.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub timeout: Duration,
}

impl Command {
    /// The sandbox options, for the commands that run a component.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        match self {
            Command::IsFreePort { run, .. }
            | Command::GetFreePort { run, .. }
            | Command::ProbePort { run, .. }
            | Command::Reserve { run, .. } => Some(&run.sandbox),
            Command::Completions { .. } => None,
            #[cfg(target_os = "linux")]
            Command::Portserver(_) | Command::PickPort(_) => None,
        }
    }
}

const COMMANDS: &str =
    "is-free-port, get-free-port, probe-port, reserve, portserver, pick-port or completions";

/// clap's error as the one line our error contract promises, naming the
/// culprit the way the rest of `port-host` does.
pub fn one_line(error: &clap::Error) -> String {
    crate::report::single_line(&message(error))
}

fn message(error: &clap::Error) -> String {
    let context = |kind: ContextKind| match error.get(kind) {
        Some(ContextValue::String(value)) => value.clone(),
        Some(ContextValue::Strings(values)) => values.join(", "),
        _ => String::new(),
    };
    match error.kind() {
        ErrorKind::InvalidSubcommand => format!(
            "unknown command '{}' ({COMMANDS})",
            context(ContextKind::InvalidSubcommand)
        ),
        ErrorKind::UnknownArgument => {
            format!("unknown option '{}'", context(ContextKind::InvalidArg))
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("a command is needed ({COMMANDS}); see --help")
        }
        ErrorKind::MissingRequiredArgument => {
            // The usage line names the subcommand that was parsed:
            // "Usage: port-host is-free-port <PORT>".
            let usage = match error.get(ContextKind::Usage) {
                Some(ContextValue::StyledStr(usage)) => usage.to_string(),
                _ => String::new(),
            };
            let mut words = usage.split_whitespace().skip_while(|w| *w != "port-host");
            let command = words.nth(1).unwrap_or("the command");
            let missing = context(ContextKind::InvalidArg);
            format!("{command} needs a {}", missing.trim_matches(['<', '>']))
        }
        // The value parsers below already name the culprit.
        ErrorKind::ValueValidation => match std::error::Error::source(error) {
            Some(cause) => cause.to_string(),
            None => first_line(error),
        },
        _ => first_line(error),
    }
}

fn first_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let line = rendered.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

fn seconds(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| !seconds.is_nan())
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds(text)?)
        .map_err(|_| format!("'{text}' is not a number of seconds"))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds = seconds(text)?;
    if seconds <= 0.0 {
        return Err(format!(
            "a --timeout of '{text}' leaves no time: it must be more than zero seconds"
        ));
    }
    // Beyond what a Duration holds (or infinity) saturates; the deadline
    // then never comes in practice instead of wrapping to a short one.
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

fn parse_count(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not a count of ports (1 to 64512)"))
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

/// `START..END` of `--allow-ports`.
fn parse_block(text: &str) -> Result<PortBlock, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not a port block START..END"))?;
    let bound = |value: &str| {
        value
            .parse::<u32>()
            .map_err(|_| format!("'{value}' is not a port number in '{text}'"))
    };
    PortBlock::new(bound(start)?..bound(end)?).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &str) -> Result<Command, String> {
        let args = std::iter::once("port-host").chain(line.split_whitespace());
        Cli::try_parse_from(args)
            .map(|cli| cli.command)
            .map_err(|error| one_line(&error))
    }

    fn range(start: u32, end: u32, step: i32) -> Candidates {
        Candidates::Range(PortRange { start, end, step })
    }

    #[test]
    fn the_command_line_type_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ranges_lists_and_steps_parse() {
        assert_eq!(parse_ports("8000..8100"), Ok(range(8000, 8100, 1)));
        assert_eq!(parse_ports("9000..8000:-10"), Ok(range(9000, 8000, -10)));
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
    fn flags_take_equals_signs_and_follow_the_command_in_any_order() {
        let Command::Reserve {
            search,
            hold_for,
            run,
            ..
        } = parse("reserve --hold-for=1.5 8000..8100 --no-strict --json").unwrap()
        else {
            panic!("not reserve");
        };
        assert_eq!(search.ports, Some(range(8000, 8100, 1)));
        assert!(search.no_strict && run.sandbox.json);
        assert_eq!(hold_for, Some(Duration::from_millis(1500)));
        assert_eq!(run.sandbox.timeout, Duration::from_secs(30));

        let Command::GetFreePort { search, run, .. } =
            parse("get-free-port --allow-ports=20000..20100 --timeout 2 -- 20000..20010").unwrap()
        else {
            panic!("not get-free-port");
        };
        assert_eq!(search.ports, Some(range(20_000, 20_010, 1)));
        assert_eq!(run.sandbox.allow_ports.unwrap().ports(), 20_000..20_100);
        assert_eq!(run.sandbox.timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_negative_step_after_double_dash_is_a_range_not_a_flag() {
        let Command::GetFreePort { search, .. } = parse("get-free-port -- 9000..8000:-1").unwrap()
        else {
            panic!("not get-free-port");
        };
        assert_eq!(search.ports, Some(range(9000, 8000, -1)));
    }

    #[test]
    fn bad_command_lines_are_refused_with_one_line() {
        for (line, culprit) in [
            ("", "a command is needed"),
            ("frobnicate 8000", "unknown command 'frobnicate'"),
            ("is-free-port 70000", "'70000'"),
            ("is-free-port abc", "'abc'"),
            ("is-free-port 8000 8001", "'8001'"),
            (
                "is-free-port 8000 --no-strict",
                "unknown option '--no-strict'",
            ),
            ("get-free-port 8000..8100 extra", "'extra'"),
            ("get-free-port --verbose", "unknown option '--verbose'"),
            ("get-free-port --component", "--component"),
            (
                "probe-port 8000 --no-strict",
                "unknown option '--no-strict'",
            ),
            ("get-free-port --hold-for 5", "unknown option '--hold-for'"),
            ("reserve --hold-for", "--hold-for"),
            ("reserve --hold-for -1", "-1"),
            ("reserve --hold-for soon", "'soon'"),
            ("reserve 8000..8100 8200", "'8200'"),
            ("serve-echo", "unknown command 'serve-echo'"),
            ("get-free-port --allow-ports 9..5", "holds no port"),
            (
                "get-free-port --allow-ports 9000",
                "'9000' is not a port block",
            ),
            ("get-free-port --timeout never", "'never'"),
            ("get-free-port --timeout 0", "more than zero"),
            (
                "get-free-port --deny-network --allow-ports 9000..9001",
                "cannot be used",
            ),
            ("completions tcsh", "tcsh"),
        ] {
            let error = parse(line).unwrap_err();
            assert!(error.contains(culprit), "'{line}': {error}");
            assert!(!error.contains('\n'), "'{line}': {error}");
        }
    }

    #[test]
    fn the_block_may_end_at_the_last_port() {
        assert_eq!(parse_block("60000..65536").unwrap().ports(), 60_000..65_536);
    }

    /// One argument as a user might mistype it: the words `port-host`
    /// knows, numbers of every size, ranges and lists, and any text at all.
    fn argument() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Any text: other scripts, control characters, NULs, line breaks.
        let text = || any::<String>();
        let word = prop::sample::select(vec![
            "is-free-port",
            "get-free-port",
            "probe-port",
            "reserve",
            "completions",
            "help",
            "bash",
            "--json",
            "--no-strict",
            "--deny-network",
            "--allow-ports",
            "--timeout",
            "--hold-for",
            "--component",
            "--count",
            "--help",
            "-h",
            "--version",
            "-V",
            "--",
            "-",
            "--=",
            "",
            "..",
            "..:",
            ",",
            "-1",
            "nan",
            "inf",
            "1e400",
            "0x10",
            "٣٣",
        ])
        .prop_map(str::to_owned);
        let number = prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            (1usize..400).prop_map(|len| "9".repeat(len)),
        ];
        let bound = prop_oneof![
            any::<u32>().prop_map(|n| n.to_string()),
            (0u32..70_000).prop_map(|n| n.to_string()),
            Just(String::new()),
            text(),
        ];
        let ports = prop_oneof![
            (bound.clone(), bound.clone()).prop_map(|(a, b)| format!("{a}..{b}")),
            (bound.clone(), bound.clone(), number.clone())
                .prop_map(|(a, b, step)| format!("{a}..{b}:{step}")),
            prop::collection::vec(bound, 0..6).prop_map(|list| list.join(",")),
        ];
        let flag_with_value = (
            prop::sample::select(vec![
                "--allow-ports",
                "--timeout",
                "--hold-for",
                "--component",
                "--count",
            ]),
            prop_oneof![number.clone(), ports.clone(), text()],
        )
            .prop_map(|(flag, value)| format!("{flag}={value}"));
        prop_oneof![
            4 => word,
            2 => number,
            2 => ports,
            1 => flag_with_value,
            2 => text(),
        ]
    }

    /// clap and our value parsers never panic on any argv, and every error
    /// meant for stderr becomes one line; `--help` and `--version` are
    /// clap's own text. Thousands of argument lists.
    #[test]
    fn any_command_line_parses_or_is_refused_in_one_line() {
        use proptest::prelude::*;
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(5_000);
        let config = ProptestConfig {
            cases,
            ..ProptestConfig::default()
        };
        proptest!(config, |(args in prop::collection::vec(argument(), 0..8))| {
            let argv = std::iter::once("port-host".to_owned()).chain(args.iter().cloned());
            if let Err(error) = Cli::try_parse_from(argv) {
                // clap's own rendering must not panic either.
                let _ = error.render().to_string();
                if error.use_stderr() {
                    let line = one_line(&error);
                    prop_assert!(!line.trim().is_empty(), "{:?}: an empty error", args);
                    prop_assert!(
                        !line.contains(['\n', '\r']),
                        "{:?}: {:?} is more than one line",
                        args,
                        line
                    );
                }
            }
        });
    }
}
