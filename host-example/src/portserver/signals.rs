//! SIGUSR1, SIGTERM and SIGINT as bytes on a socket pair (the self-pipe
//! trick): the handler only `write`s the signal's number, which is
//! async-signal-safe, and the server reads them in its loop.
//!
//! Not tokio's `signal` feature: turning it on changes the tokio that
//! wasmtime-wasi is built against, so the Python wheel (which has no port
//! server) would build wasmtime-wasi a second time. signal-hook-registry is
//! what tokio's feature uses underneath.

use std::io;
use std::os::fd::IntoRawFd;
use tokio::net::UnixStream;

/// What the server is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGUSR1: print the statistics.
    Statistics,
    /// SIGTERM or SIGINT: stop.
    Stop,
}

/// Signals as they arrive, for this process's life.
pub struct Signals {
    stream: UnixStream,
}

impl Signals {
    /// Installs the handlers (process-wide, for good).
    pub fn install() -> io::Result<Signals> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        // A full buffer drops a signal's byte rather than block a handler.
        writer.set_nonblocking(true)?;
        // The handlers write to it for as long as the process lives.
        let fd = writer.into_raw_fd();
        for signal in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
            let byte = signal as u8;
            // SAFETY: the action calls only write(2), which is
            // async-signal-safe, on a descriptor that is never closed.
            unsafe {
                signal_hook_registry::register(signal, move || {
                    libc::write(fd, (&raw const byte).cast(), 1);
                })
            }?;
        }
        Ok(Signals {
            stream: UnixStream::from_std(reader)?,
        })
    }

    /// The next signal; a stop wins over statistics that came with it.
    pub async fn next(&self) -> Signal {
        loop {
            if self.stream.readable().await.is_err() {
                return Signal::Stop;
            }
            let mut bytes = [0u8; 64];
            match self.stream.try_read(&mut bytes) {
                Ok(0) => return Signal::Stop,
                Ok(read) => {
                    let stop = bytes[..read]
                        .iter()
                        .any(|&byte| i32::from(byte) != libc::SIGUSR1);
                    return if stop {
                        Signal::Stop
                    } else {
                        Signal::Statistics
                    };
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Signal::Stop,
            }
        }
    }
}
