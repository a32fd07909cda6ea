//! The `port-host` binary's contract: what it prints, how it exits, and that
//! bad input is one line on stderr and exit 2, never a panic.

use crate::common::{free_block, free_port, listen, natively_free};
use std::process::{Command, Output};

const EXIT_FREE: i32 = 0;
const EXIT_IN_USE: i32 = 1;
const EXIT_ERROR: i32 = 2;

fn port_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_port-host"))
        .args(args)
        .output()
        .expect("port-host runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A failure as the contract wants it: exit 2, one `error:` line, no panic.
fn assert_one_line_error(output: &Output, contains: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(EXIT_ERROR), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(contains), "'{contains}' not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn is_free_port_prints_true_and_exits_0_for_a_free_port() {
    let port = free_port().to_string();
    let output = port_host(&["is-free-port", &port]);
    assert_eq!(
        (output.status.code(), stdout(&output).as_str()),
        (Some(EXIT_FREE), "true\n")
    );
}

#[test]
fn is_free_port_prints_false_and_exits_1_for_a_held_port() {
    let held = listen(0);
    let port = held.local_addr().unwrap().port().to_string();
    let output = port_host(&["is-free-port", &port]);
    assert_eq!(
        (output.status.code(), stdout(&output).as_str()),
        (Some(EXIT_IN_USE), "false\n")
    );
    let output = port_host(&["is-free-port", &port, "--json"]);
    assert_eq!(
        stdout(&output),
        format!("{{\"port\":{port},\"free\":false}}\n")
    );
}

#[test]
fn get_free_port_prints_the_first_free_port_of_a_range() {
    let start = free_block(5);
    let _held: Vec<_> = (start..start + 2).map(listen).collect();
    let range = format!("{start}..{}", start + 5);
    let output = port_host(&["get-free-port", &range]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{}\n", start + 2));
    assert_eq!(stderr(&output), "");

    let output = port_host(&["get-free-port", &range, "--json"]);
    assert_eq!(stdout(&output), format!("{{\"port\":{}}}\n", start + 2));
}

#[test]
fn get_free_port_takes_lists_and_negative_steps() {
    let start = free_block(4);
    let _held = listen(start + 3);
    let list = format!("{},{},{}", start + 3, start + 1, start);
    assert_eq!(
        stdout(&port_host(&["get-free-port", &list])),
        format!("{}\n", start + 1)
    );
    let descending = format!("{}..{}:-1", start + 3, start - 1);
    assert_eq!(
        stdout(&port_host(&["get-free-port", &descending])),
        format!("{}\n", start + 2)
    );
}

#[test]
fn strict_with_nothing_free_names_the_candidates_and_exits_2() {
    let start = free_block(2);
    let _held: Vec<_> = (start..start + 2).map(listen).collect();
    let output = port_host(&["get-free-port", &format!("{start}..{}", start + 2)]);
    let expected = format!(
        "No free port can be allocated within range({start}, {})",
        start + 2
    );
    assert_one_line_error(&output, &expected);
    assert_eq!(stdout(&output), "");

    let output = port_host(&[
        "get-free-port",
        &format!("{start}..{}", start + 2),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(EXIT_ERROR));
    assert_eq!(
        stdout(&output),
        format!("{{\"error\":\"{expected}\",\"code\":\"no-free-port\"}}\n")
    );
}

#[test]
fn no_strict_falls_back_to_a_port_the_os_picks() {
    let start = free_block(2);
    let _held: Vec<_> = (start..start + 2).map(listen).collect();
    let output = port_host(&[
        "get-free-port",
        &format!("{start}..{}", start + 2),
        "--no-strict",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let port: u16 = stdout(&output).trim().parse().unwrap();
    assert!(port >= 1024 && !(start..start + 2).contains(&port) && natively_free(port));
}

#[test]
fn no_usable_ports_warns_on_stderr_and_still_answers() {
    for args in [&["get-free-port"][..], &["get-free-port", "22..80"]] {
        let output = port_host(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(
            stderr(&output),
            "warning: no usable ports (>= 1024) were given, so strict mode is disabled\n"
        );
        let port: u16 = stdout(&output).trim().parse().unwrap();
        assert!(port >= 1024);
    }
}

#[test]
fn deny_network_reports_access_denied_for_both_commands() {
    let port = free_port().to_string();
    for args in [
        vec!["is-free-port", &port, "--deny-network"],
        vec!["get-free-port", "8000..8100", "--deny-network"],
        vec!["get-free-port", "--no-strict", "--deny-network"],
    ] {
        let output = port_host(&args);
        assert_one_line_error(&output, "access denied");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    let output = port_host(&["is-free-port", &port, "--deny-network", "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["code"], "access-denied");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("access denied"),
        "{answer}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for (args, culprit) in [
        (&["is-free-port", "70000"][..], "'70000'"),
        (&["is-free-port", "abc"], "'abc'"),
        (&["is-free-port", "0"], "port 0"),
        (&["is-free-port"], "needs a PORT"),
        (&["get-free-port", "8000..9000:0"], "step must not be zero"),
        (&["get-free-port", "8000..70000"], "at most 65536"),
        (&["get-free-port", "80a0,8001"], "'80a0'"),
        (&["get-free-port", "8000..9000:abc"], "'abc'"),
        (&["open-port", "8000"], "unknown command 'open-port'"),
        (&["get-free-port", "--fast"], "unknown option '--fast'"),
        (
            &["is-free-port", "8000", "--no-strict"],
            "unknown option '--no-strict'",
        ),
        (&["reserve", "--hold-for=soon"], "'soon'"),
        (&["get-free-port", "--allow-ports", "9..5"], "holds no port"),
        (&[], "a command is needed"),
    ] {
        let output = port_host(args);
        assert_one_line_error(&output, culprit);
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

#[test]
fn another_component_build_runs_with_component_flag() {
    let port = free_port().to_string();
    let output = port_host(&[
        "is-free-port",
        &port,
        "--component",
        concat!(env!("CARGO_MANIFEST_DIR"), "/component/hbutils_port.wasm"),
    ]);
    assert_eq!(
        (output.status.code(), stdout(&output).as_str()),
        (Some(EXIT_FREE), "true\n")
    );
}

#[test]
fn unusable_component_files_are_one_line_errors() {
    assert_one_line_error(
        &port_host(&[
            "is-free-port",
            "8000",
            "--component",
            "/nonexistent/port.wasm",
        ]),
        "cannot read /nonexistent/port.wasm",
    );
    assert_one_line_error(
        &port_host(&[
            "is-free-port",
            "8000",
            "--component",
            env!("CARGO_MANIFEST_DIR"),
        ]),
        "cannot read",
    );
    let not_wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert_one_line_error(
        &port_host(&["is-free-port", "8000", "--component", not_wasm]),
        "not a valid component",
    );
    // A real component that lacks our export.
    let empty = std::env::temp_dir().join(format!("port-host-empty-{}.wat", std::process::id()));
    std::fs::write(&empty, "(component)").unwrap();
    let output = port_host(&[
        "is-free-port",
        "8000",
        "--component",
        empty.to_str().unwrap(),
    ]);
    std::fs::remove_file(&empty).unwrap();
    assert_one_line_error(&output, "hbutils:network/port");
}

#[test]
fn help_and_version_exit_0() {
    let output = port_host(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for command in [
        "is-free-port",
        "get-free-port",
        "probe-port",
        "reserve",
        "completions",
    ] {
        assert!(text.contains(command), "{command} missing from: {text}");
    }
    let output = port_host(&["get-free-port", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("--allow-ports <START..END>"));
    let output = port_host(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!("port-host {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef port-host"),
        ("fish", "complete -c port-host"),
    ] {
        let output = port_host(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(stdout(&output).contains(marker), "{shell}");
    }
}

#[test]
fn allow_ports_answers_inside_the_block_and_refuses_outside_it() {
    let start = free_block(4);
    let allowed = format!("--allow-ports={start}..{}", start + 2);
    let inside = port_host(&[
        "get-free-port",
        &format!("{start}..{}", start + 2),
        &allowed,
    ]);
    assert_eq!(
        (inside.status.code(), stdout(&inside)),
        (Some(0), format!("{start}\n"))
    );
    let outside = (start + 2).to_string();
    assert!(natively_free(start + 2));
    let refused = port_host(&["is-free-port", &outside, &allowed]);
    assert_one_line_error(&refused, "access denied");
    let fallback = port_host(&["get-free-port", "--no-strict", &allowed]);
    assert_one_line_error(&fallback, "access denied");
}

#[test]
fn a_component_blocked_in_a_host_call_is_stopped_at_the_timeout() {
    // The escape guest's is-free-port(1) waits in accept for ever.
    let started = std::time::Instant::now();
    let output = port_host(&[
        "is-free-port",
        "1",
        "--component",
        test_guests::ESCAPE_GUEST,
        "--timeout",
        "2",
    ]);
    let took = started.elapsed();
    assert_one_line_error(
        &output,
        "the component ran past its 2 s deadline and was stopped",
    );
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_component_hoarding_sockets_stops_at_its_quota_not_the_process_limit() {
    // The escape guest's is-free-port(2) opens sockets until refused. With
    // the open-file limit above the quota, a missing quota would show as
    // EMFILE (new-socket-limit) instead of the quota's message.
    let mut command = Command::new(env!("CARGO_BIN_EXE_port-host"));
    command.args([
        "is-free-port",
        "2",
        "--component",
        test_guests::ESCAPE_GUEST,
    ]);
    let output = crate::common::with_open_file_limit(&mut command, 1_200)
        .output()
        .unwrap();
    assert_one_line_error(&output, "quota of 1000 live sockets");
}
