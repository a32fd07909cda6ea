//! A TCP echo server component that never chooses a port: it reserves one
//! through `hbutils:network/port`, takes the reservation's listening socket
//! and accepts on it. The contract is `wit/echo.wit`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use wasi::io::streams::{InputStream, OutputStream};
use wasi::sockets::network::ErrorCode as SocketError;
use wasi::sockets::tcp::TcpSocket;

wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "hbutils:echo/echo-server",
    // One set of WASI types for this crate and the port interface, so the
    // socket a reservation hands over is a `wasi::sockets::tcp::TcpSocket`.
    with: {
        "hbutils:network/port@0.4.0": generate,
        "wasi:sockets/tcp@0.2.12": wasi::sockets::tcp,
        "wasi:sockets/network@0.2.12": wasi::sockets::network,
        "wasi:io/poll@0.2.12": wasi::io::poll,
        "wasi:io/streams@0.2.12": wasi::io::streams,
        "wasi:io/error@0.2.12": wasi::io::error,
        "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
    },
});

use exports::hbutils::echo::server::Guest;
use hbutils::network::port::{self, Candidates, ErrorCode, ReservationError};

/// The most one read asks for; `blocking-write-and-flush` takes at most 4096
/// bytes a call, so each read is written back in one.
const CHUNK: u64 = 4096;

thread_local! {
    /// The socket `start` took from its reservation.
    static LISTENER: RefCell<Option<TcpSocket>> = const { RefCell::new(None) };
}

struct Echo;

impl Guest for Echo {
    fn start(ports: Option<Candidates>, strict: bool) -> Result<u16, ErrorCode> {
        let reservation = port::reserve_port(ports.as_ref(), strict)?;
        let port = reservation.port().map_err(broken_contract)?;
        let socket = reservation.take_socket().map_err(broken_contract)?;
        // A second start replaces (and so closes) the first listener.
        LISTENER.with(|listener| *listener.borrow_mut() = Some(socket));
        Ok(port)
    }

    fn serve(connections: Option<u32>) -> Result<(), String> {
        LISTENER.with(|listener| {
            let listener = listener.borrow();
            let listener = listener.as_ref().ok_or_else(|| "not started".to_owned())?;
            let ready = listener.subscribe();
            let mut served = 0;
            while connections.is_none_or(|limit| served < limit) {
                let (connection, input, output) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(SocketError::WouldBlock) => {
                        ready.block();
                        continue;
                    }
                    // A client that gave up before its turn; serve the next.
                    Err(SocketError::ConnectionAborted | SocketError::ConnectionReset) => continue,
                    Err(code) => return Err(code.name().to_owned()),
                };
                echo(&input, &output);
                // The streams belong to the connection, so they close first.
                drop((input, output));
                drop(connection);
                served += 1;
            }
            Ok(())
        })
    }
}

/// Writes back what arrives until the peer closes or the connection fails.
fn echo(input: &InputStream, output: &OutputStream) {
    while let Ok(bytes) = input.blocking_read(CHUNK) {
        if output.blocking_write_and_flush(&bytes).is_err() {
            return;
        }
    }
}

/// A fresh reservation always holds its port and socket; if it does not, the
/// provider broke its contract, and that is reported rather than trapped on.
fn broken_contract(error: ReservationError) -> ErrorCode {
    ErrorCode::Other(format!("fresh reservation already ended: {error:?}"))
}

export!(Echo);
