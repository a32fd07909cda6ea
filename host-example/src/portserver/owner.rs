//! Who holds a port: a process, known by its pid and its start time as
//! /proc/PID/stat gives them. A pid alone is not enough: the kernel hands a
//! dead process's pid to a new one, and the new one must not inherit a port.
//!
//! The start time counts clock ticks (10 ms here), so a pid reused within
//! the tick its last holder started in (only ns_last_pid can arrange that)
//! would read as the same process. Where the kernel has pidfs (Linux 6.9
//! on), a pidfd's inode number names one process for the whole boot and is
//! part of the identity too; on older kernels every pidfd shares one inode,
//! and (pid, start time) decides alone.

use std::fs;
use std::io::Read;

/// A process as the pool records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: clock ticks from boot to the process's
    /// start.
    pub start: u64,
    /// The inode of a pidfd for the process (pidfs), or 0 if none could be
    /// opened.
    pub pidfs: u64,
}

/// What /proc says about a pid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// Its pid and start time; `pidfs` is left 0 here (see [`live_owner`]).
    pub owner: Owner,
    pub parent: u32,
    /// Dead but not yet reaped: its sockets are closed, it holds nothing.
    pub zombie: bool,
}

/// The process with `pid`, if there is one. Never pid 0.
pub fn process(pid: u32) -> Option<Process> {
    if pid == 0 {
        return None;
    }
    // One read into a buffer: the line is a few hundred bytes (COMM is at
    // most 64), and fs::read would add a statx and a second read to a call
    // made for every request.
    let mut file = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buffer = [0u8; 1024];
    let read = file.read(&mut buffer).ok()?;
    parse_stat(pid, &buffer[..read])
}

/// The owner, if `pid` names a live process that may hold ports: not pid 0,
/// not init (pid 1, which portserver.py refuses too: it never exits, so its
/// ports would never come back), not a zombie.
pub fn live_owner(pid: u32) -> Option<Owner> {
    if pid <= 1 {
        return None;
    }
    let owner = process(pid).filter(|p| !p.zombie)?.owner;
    Some(Owner {
        pidfs: pidfs_inode(pid)?,
        ..owner
    })
}

/// The pidfs inode of `pid`'s process; `None` when it has gone, `Some(0)`
/// when the kernel has no pidfd at all.
fn pidfs_inode(pid: u32) -> Option<u64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (or -1), which is closed below; fstat only writes the struct passed.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if fd < 0 {
            let error = std::io::Error::last_os_error().raw_os_error();
            // ENOSYS: a kernel before 5.3; the start time decides alone.
            return (error == Some(libc::ENOSYS)).then_some(0);
        }
        let fd = fd as libc::c_int;
        let mut stat: libc::stat = std::mem::zeroed();
        let inode = if libc::fstat(fd, &mut stat) == 0 {
            stat.st_ino
        } else {
            0
        };
        libc::close(fd);
        Some(inode)
    }
}

/// Whether `owner` is still the process it was.
pub fn alive(owner: Owner) -> bool {
    live_owner(owner.pid) == Some(owner)
}

/// Whether `pid` is `ancestor` or was started by it (or by its children):
/// a client may ask in the name of a process it started, never another's.
pub fn is_self_or_descendant(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    // Process trees are shallow; the bound only stops a loop on a racing
    // /proc (a parent that died and whose pid was reused meanwhile).
    for _ in 0..256 {
        if current == ancestor {
            return true;
        }
        match process(current) {
            Some(p) if p.parent != 0 && p.parent != current => current = p.parent,
            _ => return false,
        }
    }
    false
}

/// `/proc/PID/stat`: "PID (COMM) STATE PPID ... STARTTIME ...". COMM may hold
/// spaces and parentheses, so the fields are counted from the last ')'.
fn parse_stat(pid: u32, stat: &[u8]) -> Option<Process> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the state; field 4 the parent; field 22 the start time.
    let state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some(Process {
        owner: Owner {
            pid,
            start,
            pidfs: 0,
        },
        parent,
        zombie: matches!(state, "Z" | "X" | "x"),
    })
}

/// This boot's identity: start times count from boot, so a state file from
/// another boot names no live process.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_counted_past_a_command_with_spaces_and_parens() {
        let stat = b"4242 (a b) c)) S 77 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        let p = parse_stat(4242, stat).unwrap();
        assert_eq!(
            p.owner,
            Owner {
                pid: 4242,
                start: 987654,
                pidfs: 0,
            }
        );
        assert_eq!(p.parent, 77);
        assert!(!p.zombie);
        let zombie = b"9 (x) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert!(parse_stat(9, zombie).unwrap().zombie);
        assert!(parse_stat(9, b"9 (x) S 1").is_none());
        assert!(parse_stat(9, b"garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_and_its_own_descendant_and_pid_1_never_owns() {
        let me = std::process::id();
        let owner = live_owner(me).unwrap();
        assert!(alive(owner));
        assert!(!alive(Owner {
            start: owner.start + 1,
            ..owner
        }));
        assert!(is_self_or_descendant(me, me));
        assert!(is_self_or_descendant(me, 1));
        assert!(!is_self_or_descendant(1, me));
        assert_eq!(live_owner(1), None);
        assert_eq!(live_owner(0), None);
    }
}
