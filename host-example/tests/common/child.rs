//! A child process for a test: every wait is bounded, and the child is
//! killed and reaped when the guard drops, whatever the test did. A hung
//! child fails its test; it never hangs the suite.

use super::os::Ending;
use std::io::{BufRead, BufReader};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Longer than any healthy start or exit, even on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Child {
    child: std::process::Child,
    /// Lines of stdout as a reader thread gets them, when stdout is piped.
    lines: Option<Receiver<String>>,
    /// All of stderr, read to its end by a thread, when stderr is piped.
    stderr: Option<thread::JoinHandle<String>>,
    /// Lines of stderr as the same thread reads them.
    err_lines: Option<Receiver<String>>,
}

impl Child {
    /// `port-host` with `args`: stdin, stdout and stderr piped.
    pub fn port_host(args: &[&str]) -> Child {
        Child::spawn(
            Command::new(env!("CARGO_BIN_EXE_port-host"))
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    /// Starts `command` as set up by the caller; whichever of stdout and
    /// stderr it pipes is read on a thread, so the child never blocks on a
    /// full pipe.
    pub fn spawn(command: &mut Command) -> Child {
        let mut child = command.spawn().expect("the child starts");
        let lines = child.stdout.take().map(|stdout| {
            let (sender, receiver) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            receiver
        });
        let (err_sender, err_receiver) = mpsc::channel();
        let stderr = child.stderr.take().map(|stderr| {
            thread::spawn(move || {
                let mut text = String::new();
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                while reader
                    .read_until(b'\n', &mut line)
                    .is_ok_and(|read| read > 0)
                {
                    let piece = String::from_utf8_lossy(&line);
                    text.push_str(&piece);
                    let _ = err_sender.send(piece.trim_end_matches('\n').to_owned());
                    line.clear();
                }
                text
            })
        });
        let err_lines = stderr.is_some().then_some(err_receiver);
        Child {
            child,
            lines,
            stderr,
            err_lines,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of stdout, within [`PATIENCE`]; panics when none comes.
    pub fn line(&mut self) -> String {
        self.try_line()
            .unwrap_or_else(|| panic!("the child printed no line within {PATIENCE:?}"))
    }

    /// The next line of stdout within [`PATIENCE`], or `None` when stdout
    /// closed (or the time ran out) first.
    pub fn try_line(&mut self) -> Option<String> {
        let lines = self.lines.as_ref().expect("stdout is piped");
        lines.recv_timeout(PATIENCE).ok()
    }

    /// The next line of stderr, within [`PATIENCE`]; panics when none comes.
    /// [`Child::finish`] still returns the whole of stderr.
    pub fn err_line(&mut self) -> String {
        let lines = self.err_lines.as_ref().expect("stderr is piped");
        lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("the child wrote no line to stderr within {PATIENCE:?}"))
    }

    /// The next `count` lines of stdout, each within [`PATIENCE`].
    pub fn lines(&mut self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.line()).collect()
    }

    /// The child's stdin, once; dropping it closes the pipe.
    pub fn stdin(&mut self) -> ChildStdin {
        self.child
            .stdin
            .take()
            .expect("stdin is piped, and taken once")
    }

    /// Waits for the exit, within [`PATIENCE`]; panics (and the drop kills
    /// the child) when it does not come.
    pub fn wait(&mut self) -> ExitStatus {
        self.try_wait_for(PATIENCE)
            .unwrap_or_else(|| panic!("the child did not exit within {PATIENCE:?}"))
    }

    /// The exit status if the child ends within `patience`.
    pub fn try_wait_for(&mut self, patience: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            if started.elapsed() >= patience {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the exit (within [`PATIENCE`]) and returns it with all the
    /// child wrote to stderr.
    pub fn finish(&mut self) -> (ExitStatus, String) {
        let status = self.wait();
        let stderr = self
            .stderr
            .take()
            .expect("stderr is piped, and read once")
            .join()
            .expect("the stderr reader does not panic");
        (status, stderr)
    }

    /// Sends `signal` (a `libc::SIG*`) to the child.
    #[cfg(unix)]
    pub fn signal(&self, signal: libc::c_int) {
        super::os::signal_pid(self.child.id(), signal);
    }

    /// Ends the child as `how` says (see [`Ending`]); its status then
    /// tells so ([`super::os::ended_by`]).
    pub fn end(&mut self, how: Ending) {
        super::os::end(&mut self.child, how);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
