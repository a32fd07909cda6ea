//! What the tests ask of the OS beyond std, each in one place, for every OS
//! the tests build on (Linux, macOS, Windows). Where an OS has no such thing
//! the function says so (`None`, or nothing to do where nothing limits), and
//! a test that needs it says it was skipped (`super::skipped`), never passes
//! in silence.

use std::process::{Child, Command, ExitStatus};

/// The descriptors this process has open now (the directory handle that
/// counts them is the same one extra every time): Linux's /proc/self/fd and
/// macOS's /dev/fd. `None` on Windows, whose sockets are handles among
/// every other kind the runtime opens.
pub fn open_descriptors() -> Option<usize> {
    let folder = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else if cfg!(target_os = "macos") {
        "/dev/fd"
    } else {
        return None;
    };
    Some(std::fs::read_dir(folder).ok()?.count())
}

/// This process's resident memory in bytes (Linux's VmRSS); `None` elsewhere.
pub fn resident_bytes() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// The ports the OS hands out for `bind(0)`: Linux's
/// /proc/sys/net/ipv4/ip_local_port_range, else Linux's default. On macOS
/// and Windows (49152–65535 by default) the union of both defaults, so that
/// a port outside it is outside whichever the OS uses (wine's is Linux's).
pub fn ephemeral_range() -> (u32, u32) {
    if !cfg!(target_os = "linux") {
        return (32_768, 65_535);
    }
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let bounds: Vec<u32> = text
        .iter()
        .flat_map(|text| text.split_whitespace().filter_map(|n| n.parse().ok()))
        .collect();
    match bounds[..] {
        [low, high] => (low, high),
        // Linux's default.
        _ => (32_768, 60_999),
    }
}

/// Whether some thread of process `pid` is blocked in read(2) on descriptor
/// 0 (/proc/PID/task/TID/syscall: the call's number, then its arguments);
/// `None` where the OS does not show it (not Linux).
pub fn reads_stdin(pid: u32) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Some(false);
        };
        Some(tasks.filter_map(Result::ok).any(|task| {
            std::fs::read_to_string(task.path().join("syscall")).is_ok_and(|call| {
                let mut words = call.split_whitespace();
                words.next() == Some(&libc::SYS_read.to_string()) && words.next() == Some("0x0")
            })
        }))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// This process's open-file limits: (soft, hard). Windows has no such
/// limit on sockets (its handle table holds about 16 million): unbounded.
pub fn open_file_limits() -> (u64, u64) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        (limit.rlim_cur, limit.rlim_max)
    }
    #[cfg(not(unix))]
    (u64::MAX, u64::MAX)
}

/// Raises the soft open-file limit to `needed`, within the hard limit
/// (which the caller has checked); nothing to raise where there is none.
pub fn raise_open_files(needed: u64) {
    #[cfg(unix)]
    {
        let (_, hard) = open_file_limits();
        let limit = libc::rlimit {
            rlim_cur: needed,
            rlim_max: hard,
        };
        // SAFETY: setrlimit only reads the struct passed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    }
    #[cfg(not(unix))]
    let _ = needed;
}

/// `command` with its soft open-file limit set to `files` in the child;
/// as it is where the OS has no such limit.
pub fn with_open_file_limit(command: &mut Command, files: u64) -> &mut Command {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let limit = libc::rlimit {
            rlim_cur: files,
            rlim_max: files,
        };
        // SAFETY: setrlimit is async-signal-safe and touches only this child.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })
        }
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        command
    }
}

/// How a child is made to end from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// As a service manager stops it: SIGTERM. Windows has no such request
    /// for a process without a window or a console of its own; there it is
    /// [`Ending::Kill`].
    Terminate,
    /// As the OOM killer would: SIGKILL; TerminateProcess on Windows.
    Kill,
}

/// Whether the OS can ask a process to end ([`Ending::Terminate`]) rather
/// than only kill it.
pub const CAN_TERMINATE: bool = cfg!(unix);

/// Ends `child` as `how` says.
pub fn end(child: &mut Child, how: Ending) {
    #[cfg(unix)]
    {
        let signal = match how {
            Ending::Terminate => libc::SIGTERM,
            Ending::Kill => libc::SIGKILL,
        };
        signal_pid(child.id(), signal);
    }
    #[cfg(not(unix))]
    {
        let _ = how;
        child.kill().expect("the child can be killed");
    }
}

/// Whether `status` is that of a process ended as `how` says.
pub fn ended_by(status: ExitStatus, how: Ending) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        let signal = match how {
            Ending::Terminate => libc::SIGTERM,
            Ending::Kill => libc::SIGKILL,
        };
        status.signal() == Some(signal)
    }
    // std's Child::kill is TerminateProcess with exit code 1.
    #[cfg(not(unix))]
    {
        let _ = how;
        status.code() == Some(1)
    }
}

/// Sends `signal` (a `libc::SIG*`) to process `pid`.
#[cfg(unix)]
pub fn signal_pid(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill has no memory effects; callers name their own unreaped
    // child, so it cannot name another process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal}");
}
