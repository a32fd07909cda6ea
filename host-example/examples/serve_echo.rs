//! The echo-server example (`examples/echo-server`, composed with the
//! component port-host ships): it reserves a port among PORTS, takes the
//! listening socket, prints the port and echoes TCP connections on it.
//!
//! ```sh
//! cargo run --release -p port-host --example serve_echo -- 9000 9100
//! ```

#[path = "../tests/common/echo.rs"]
mod echo;

use port_host::{Candidates, Limits, NetworkPolicy, PortRange};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let bound = |arg: Option<String>, default: u32| {
        arg.map_or(Ok(default), |text| {
            text.parse::<u32>()
                .map_err(|_| format!("'{text}' is not a port"))
        })
    };
    let mut args = std::env::args().skip(1);
    let ports = match (bound(args.next(), 9000), bound(args.next(), 9100)) {
        (Ok(start), Ok(end)) => Candidates::Range(PortRange {
            start,
            end,
            step: 1,
        }),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let started = echo::EchoServer::start(
        NetworkPolicy::loopback(),
        Some(&ports),
        true,
        Limits::default(),
    )
    .await;
    let mut server = match started {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            eprintln!("error: the component found no port: {error:?}");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    println!("{}", server.port());
    match server.serve(None).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(code)) => {
            eprintln!("error: the echo server stopped: {code}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
