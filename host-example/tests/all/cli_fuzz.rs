//! The real `port-host` binary run with random argument lists: it exits 0, 1
//! or 2, never by a signal; exit 2 comes with exactly one `error:` line on
//! stderr; and nothing ever panics.
//!
//! The arguments are drawn from a seed (`CLI_FUZZ_SEED`, or the clock; a
//! failure names it). What could legitimately run for long is kept out:
//! `--hold-for` only
//! gets values that are short or refused; `reserve` without it waits for
//! stdin, which is null here, so it releases at once. Port numbers that a
//! command would bind are below 1024 (skipped), in a block this test owns,
//! in the OS's ephemeral range or beyond 65535: never a port another test of
//! this machine may be counting on.

use crate::common::child::{Child, PATIENCE};
use crate::common::{free_block, listen};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const RUNS: usize = 300;

/// splitmix64.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

/// Where the drawn port numbers come from.
struct Ports {
    block: u16,
    len: u16,
}

impl Ports {
    /// A number that names no port another test may be using.
    fn number(&self, random: &mut Random) -> String {
        match random.below(7) {
            0 => random.below(1024).to_string(),
            1 => (self.block + random.below(usize::from(self.len)) as u16).to_string(),
            2 => (32_768 + random.below(28_232)).to_string(),
            3 => (65_536 + random.below(1 << 20)).to_string(),
            4 => random.next().to_string(),
            5 => format!("-{}", random.next() % 100_000),
            _ => "9".repeat(1 + random.below(60)),
        }
    }

    fn candidates(&self, random: &mut Random) -> String {
        match random.below(4) {
            0 => format!("{}..{}", self.number(random), self.number(random)),
            1 => format!(
                "{}..{}:{}",
                self.number(random),
                self.number(random),
                random.pick(&[
                    "1",
                    "-1",
                    "0",
                    "7",
                    "-65535",
                    "2147483647",
                    "-2147483648",
                    "9999999999",
                    "x",
                    ""
                ])
            ),
            2 => (0..random.below(6))
                .map(|_| self.number(random))
                .collect::<Vec<_>>()
                .join(","),
            _ => random
                .pick(&[
                    "",
                    "..",
                    "..:",
                    ",",
                    ",,",
                    "1..",
                    "..2",
                    "a..b",
                    "1024..65536:0",
                ])
                .to_owned(),
        }
    }
}

/// Any text but NUL, which no argument can carry: other scripts, control
/// characters, line breaks, tabs, escapes. An error that quotes the argument
/// must still be one line.
fn any_text(random: &mut Random) -> String {
    (0..random.below(12))
        .map(|_| match random.below(4) {
            0 => char::from(32 + random.below(95) as u8),
            1 => char::from_u32(1 + random.below(31) as u32).unwrap(),
            _ => char::from_u32(random.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
        })
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

fn argv(random: &mut Random, ports: &Ports) -> Vec<String> {
    let mut args = Vec::new();
    for _ in 0..random.below(7) {
        match random.below(10) {
            0 | 1 => args.push(
                random
                    .pick(&[
                        "is-free-port",
                        "get-free-port",
                        "probe-port",
                        "reserve",
                        "completions",
                        "help",
                        "bash",
                        "zsh",
                        "frobnicate",
                    ])
                    .to_owned(),
            ),
            2 | 3 => args.push(
                random
                    .pick(&[
                        "--json",
                        "--no-strict",
                        "--deny-network",
                        "--help",
                        "-h",
                        "--version",
                        "-V",
                        "--",
                        "-",
                        "--allow-ports",
                        "--timeout",
                        "--component",
                        "--count",
                        "--verbose",
                        "-x",
                        "",
                    ])
                    .to_owned(),
            ),
            4 => args.push(ports.number(random)),
            5 | 6 => args.push(ports.candidates(random)),
            7 => {
                // Only short holds, or values that are refused.
                let value = random.pick(&["0", "0.05", "-1", "nan", "inf", "1e400", "", "soon"]);
                if random.below(2) == 0 {
                    args.push(format!("--hold-for={value}"));
                } else {
                    args.extend(["--hold-for".to_owned(), value.to_owned()]);
                }
            }
            8 => {
                let flag = random.pick(&["--allow-ports", "--timeout", "--component", "--count"]);
                let value = match random.below(3) {
                    0 => ports.candidates(random),
                    1 => ports.number(random),
                    _ => any_text(random),
                };
                args.push(format!("{flag}={value}"));
            }
            _ => args.push(any_text(random)),
        }
    }
    // Mostly a real command first, so that runs get past the first word.
    if random.below(3) != 0 {
        args.insert(
            0,
            random
                .pick(&["is-free-port", "get-free-port", "probe-port", "reserve"])
                .to_owned(),
        );
    }
    args
}

/// Runs one argument list; `Err` says what was wrong.
fn run(args: &[String]) -> Result<i32, String> {
    let mut child = Child::spawn(
        Command::new(env!("CARGO_BIN_EXE_port-host"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    if child.try_wait_for(PATIENCE).is_none() {
        return Err("still running after the patience ran out".into());
    }
    let (status, stderr) = child.finish();
    let code = status
        .code()
        .ok_or_else(|| format!("ended by a signal ({status}); stderr: {stderr:?}"))?;
    if stderr.contains("panicked") {
        return Err(format!("panicked: {stderr:?}"));
    }
    // Besides the one error, stderr may carry the component's warning lines.
    let lines: Vec<&str> = stderr.lines().collect();
    let errors = lines
        .iter()
        .filter(|line| line.starts_with("error:"))
        .count();
    if let Some(stray) = lines
        .iter()
        .find(|line| !line.starts_with("error:") && !line.starts_with("warning:"))
    {
        return Err(format!(
            "exit {code} with a stray line {stray:?}: {stderr:?}"
        ));
    }
    match (code, errors) {
        (2, 1) | (0 | 1, 0) => Ok(code),
        _ => Err(format!("exit {code} with {errors} error lines: {stderr:?}")),
    }
}

#[test]
fn any_argv_exits_0_1_or_2_and_an_error_is_one_line_never_a_panic() {
    let seed = std::env::var("CLI_FUZZ_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let ports = Ports {
        block: free_block(16),
        len: 16,
    };
    // Half the block held, so that is-free-port can also answer 1.
    let _held: Vec<_> = (ports.block..ports.block + ports.len)
        .step_by(2)
        .map(listen)
        .collect();
    let mut random = Random(seed);
    let cases: Vec<Vec<String>> = (0..RUNS).map(|_| argv(&mut random, &ports)).collect();
    let next = AtomicUsize::new(0);
    let exits = [0, 1, 2].map(|_| AtomicUsize::new(0));
    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(args) = cases.get(i) else {
                            return failures;
                        };
                        match run(args) {
                            Ok(code) => {
                                exits[code as usize].fetch_add(1, Ordering::Relaxed);
                            }
                            Err(why) => failures.push(format!("{args:?}: {why}")),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "CLI_FUZZ_SEED={seed}: {} of {RUNS} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each outcome is reached, or the draw no longer tests what it says.
    let exits = exits.map(|count| count.load(Ordering::Relaxed));
    assert!(
        exits[0] > 0 && exits[2] > 0,
        "CLI_FUZZ_SEED={seed}: exits 0/1/2: {exits:?}"
    );
}
