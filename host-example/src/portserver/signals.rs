//! SIGUSR1, SIGTERM and SIGINT as bytes on a socket pair (the self-pipe
//! trick), for as long as a server runs: the handler only `write`s the
//! signal's number, which is async-signal-safe, and the server reads them in
//! its loop. When the server is done, each signal's earlier disposition is
//! put back, so an embedder's process is as it was: Ctrl-C stops it again.
//!
//! Plain `sigaction`, not tokio's `signal` feature or signal-hook-registry:
//! tokio's feature changes the tokio that wasmtime-wasi is built against (the
//! Python wheel, which has no port server, would build wasmtime-wasi a second
//! time), and signal-hook-registry cannot put a default disposition back
//! (unregistering its last action leaves the signal ignored). A handler that
//! was there before, tokio's own for one, is still called for each signal.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use tokio::net::UnixStream;

/// What the server is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGUSR1: print the statistics.
    Statistics,
    /// SIGTERM or SIGINT: stop.
    Stop,
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT];

/// The write end the handler writes to, or -1 while no server listens. The
/// pair is made once per process and never closed: a handler that read the
/// descriptor just before a server ended may still write to it, and a
/// closed number could by then name someone else's file.
static WRITER: AtomicI32 = AtomicI32::new(-1);

/// The pair's read end, while no server holds it.
static READER: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Each signal's disposition before the server's, to put back.
static PREVIOUS: Mutex<Vec<(libc::c_int, libc::sigaction)>> = Mutex::new(Vec::new());

/// The earlier handler of each of [`SIGNALS`], for the handler to call: its
/// address (0 for none, the default or ignore) and whether it takes a
/// siginfo. Atomics, because a handler may take no lock.
static CHAIN: [(AtomicUsize, AtomicBool); 3] = [
    (AtomicUsize::new(0), AtomicBool::new(false)),
    (AtomicUsize::new(0), AtomicBool::new(false)),
    (AtomicUsize::new(0), AtomicBool::new(false)),
];

/// Signals as they arrive, while this value lives; dropping it puts the
/// process's earlier handlers back.
pub struct Signals {
    stream: Option<UnixStream>,
}

impl Signals {
    /// Installs the handlers. One server per process handles signals at a
    /// time; a second is refused.
    pub fn install() -> io::Result<Signals> {
        let mut reader = READER.lock().unwrap_or_else(|p| p.into_inner());
        if WRITER.load(Ordering::Acquire) < 0 {
            let (read, write) = std::os::unix::net::UnixStream::pair()?;
            read.set_nonblocking(true)?;
            // A full buffer drops a signal's byte rather than block a handler.
            write.set_nonblocking(true)?;
            *reader = Some(OwnedFd::from(read));
            WRITER.store(
                std::os::fd::IntoRawFd::into_raw_fd(write),
                Ordering::Release,
            );
        }
        let read = reader.take().ok_or_else(|| {
            io::Error::other("another port server in this process handles the signals")
        })?;
        // Bytes from signals that came before this server are not its own.
        drain(&read);
        let std_read = std::os::unix::net::UnixStream::from(read);
        let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
        for (i, signal) in SIGNALS.into_iter().enumerate() {
            // SAFETY: a zeroed sigaction is a valid value to fill in; the
            // handler is async-signal-safe (see `handler`).
            unsafe {
                // The earlier handler, recorded before ours can run.
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, std::ptr::null(), &mut old);
                let chained = match old.sa_sigaction {
                    libc::SIG_DFL | libc::SIG_IGN => 0,
                    earlier => earlier,
                };
                CHAIN[i]
                    .1
                    .store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
                CHAIN[i].0.store(chained, Ordering::Release);
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, &mut old) != 0 {
                    let error = io::Error::last_os_error();
                    drop(previous);
                    restore();
                    *reader = Some(OwnedFd::from(std_read));
                    return Err(error);
                }
                previous.push((signal, old));
            }
        }
        drop(previous);
        Ok(Signals {
            stream: Some(UnixStream::from_std(std_read)?),
        })
    }

    /// The next signal; a stop wins over statistics that came with it.
    pub async fn next(&self) -> Signal {
        let Some(stream) = &self.stream else {
            return Signal::Stop;
        };
        loop {
            if stream.readable().await.is_err() {
                return Signal::Stop;
            }
            let mut bytes = [0u8; 64];
            match stream.try_read(&mut bytes) {
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

impl Drop for Signals {
    fn drop(&mut self) {
        restore();
        // The read end goes back for the next server of this process.
        if let Some(stream) = self.stream.take()
            && let Ok(stream) = stream.into_std()
        {
            *READER.lock().unwrap_or_else(|p| p.into_inner()) = Some(OwnedFd::from(stream));
        }
    }
}

/// Puts back every disposition the server replaced.
fn restore() {
    let mut previous = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    for (signal, old) in previous.drain(..) {
        // SAFETY: `old` is what sigaction gave for this signal.
        unsafe {
            libc::sigaction(signal, &old, std::ptr::null_mut());
        }
    }
}

/// Reads whatever is waiting on the non-blocking read end.
fn drain(read: &OwnedFd) {
    let mut bytes = [0u8; 64];
    // SAFETY: a read into a buffer of its own size.
    while unsafe { libc::read(read.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len()) } > 0 {}
}

/// The signal's number as one byte on the pair; then the handler that was
/// there before, if it was a function. Only async-signal-safe work: atomic
/// loads, write(2), and the earlier handler (whose own rules hold).
extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let fd = WRITER.load(Ordering::Acquire);
    let byte = signal as u8;
    if fd >= 0 {
        // SAFETY: one byte from the stack to a descriptor never closed.
        unsafe {
            libc::write(fd, (&raw const byte).cast(), 1);
        }
    }
    let Some(i) = SIGNALS.iter().position(|&s| s == signal) else {
        return;
    };
    let earlier = CHAIN[i].0.load(Ordering::Acquire);
    if earlier == 0 {
        return;
    }
    // SAFETY: `earlier` was this signal's handler, installed with the
    // flags recorded beside it, and is called as the kernel would call it.
    unsafe {
        if CHAIN[i].1.load(Ordering::Acquire) {
            let earlier: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(earlier);
            earlier(signal, info, context);
        } else {
            let earlier: extern "C" fn(libc::c_int) = std::mem::transmute(earlier);
            earlier(signal);
        }
    }
}

/// Held by the unit tests that install the handlers: one at a time.
#[cfg(test)]
pub static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(signal: libc::c_int) -> libc::sighandler_t {
        // SAFETY: a query only; `old` is written by the kernel.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut old);
            old.sa_sigaction
        }
    }

    #[test]
    fn dropped_signals_put_the_earlier_dispositions_back_and_keep_their_descriptors() {
        let _alone = TEST_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let before: Vec<_> = SIGNALS.iter().map(|&s| disposition(s)).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let mut descriptors = Vec::new();
        for _ in 0..3 {
            let signals = runtime.block_on(async { Signals::install() }).unwrap();
            for &signal in &SIGNALS {
                assert_eq!(
                    disposition(signal),
                    handler as *const () as libc::sighandler_t
                );
            }
            // A second server in the process is refused, not silently deaf.
            assert!(runtime.block_on(async { Signals::install() }).is_err());
            // SAFETY: the handler is installed and only writes a byte.
            unsafe { libc::raise(libc::SIGUSR1) };
            let got = runtime.block_on(signals.next());
            assert_eq!(got, Signal::Statistics);
            runtime.block_on(async { drop(signals) });
            let after: Vec<_> = SIGNALS.iter().map(|&s| disposition(s)).collect();
            assert_eq!(after, before);
            descriptors.push(count());
        }
        assert!(
            descriptors.windows(2).all(|pair| pair[1] <= pair[0]),
            "descriptors per server: {descriptors:?}"
        );
    }
}
