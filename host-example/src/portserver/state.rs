//! The state file: every held port and its holder, so that a server that is
//! restarted (or killed and restarted) never hands a live client's port to
//! another.
//!
//! It is rewritten whole for each batch of requests: to a new file, which is
//! fsynced and renamed over the old one (and the directory fsynced), so a
//! reader finds the old state or the new one, never a mix. A reply is sent
//! only after the state that records it is written.
//!
//! ```text
//! port-host portserver state 1
//! boot 3f6c…                      (/proc/sys/kernel/random/boot_id)
//! 15000 4242 987654 1031 1a2b3c4d (port, pid, start time, pidfs inode, checksum)
//! 15007 unknown 5e6f7a8b          (held by someone a damaged file named)
//! end 2                           (how many port lines there are)
//! ```
//!
//! Port lines are in port order and each carries a checksum of itself. A
//! damaged file (a line that fails, a missing `end`) is refused with a clear
//! error unless the server is told to start anyway; then the ports a damaged
//! line may have named, those between the good lines around it, are held by
//! an unknown owner and never handed out, so a damaged file can cost ports
//! but never give one out twice.

use super::owner::Owner;
use super::pool::{Holder, Pool};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const HEADER: &str = "port-host portserver state 1";

/// What loading found, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Ports restored with their owners (dead owners included: they are
    /// reclaimed when a walk reaches them).
    pub owned: usize,
    /// Ports held by an unknown owner.
    pub unknown: usize,
    /// Set when the file was damaged and the start went ahead.
    pub damage: Option<String>,
}

/// Restores `pool`'s holders from the file at `path`; a missing file is an
/// empty state. A damaged file is an error unless `accept_damage`.
pub fn load(
    path: &Path,
    pool: &mut Pool,
    boot: &str,
    accept_damage: bool,
) -> Result<Loaded, String> {
    let text = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(error) => {
            return Err(format!(
                "cannot read the state file {}: {error}",
                path.display()
            ));
        }
    };
    let parsed = parse(&text, boot);
    if let Some(damage) = &parsed.damage
        && !accept_damage
    {
        return Err(format!(
            "the state file {} is damaged ({damage}): it may record ports that live \
                 processes hold. Start with --accept-damaged-state to start anyway, holding \
                 every port the damage may hide, or remove the file when no client is running",
            path.display()
        ));
    }
    let mut loaded = Loaded {
        damage: parsed.damage,
        ..Loaded::default()
    };
    for (port, holder) in parsed.held {
        if let Some(slot) = pool.slot(port) {
            pool.record(slot, Some(holder));
            match holder {
                Holder::Owner(_) => loaded.owned += 1,
                Holder::Unknown => loaded.unknown += 1,
            }
        }
    }
    for (low, high) in parsed.gaps {
        for slot in 0..pool.len() {
            let port = u32::from(pool.port(slot));
            if low < port && port < high && pool.holder(slot).is_none() {
                pool.record(slot, Some(Holder::Unknown));
                loaded.unknown += 1;
            }
        }
    }
    Ok(loaded)
}

#[derive(Debug, Default)]
struct Parsed {
    held: Vec<(u16, Holder)>,
    /// Open intervals of ports a damaged line may have named.
    gaps: Vec<(u32, u32)>,
    damage: Option<String>,
}

fn parse(bytes: &[u8], boot: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let everything = (0, 1 << 16);
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n');
    if lines.next() != Some(HEADER) {
        parsed.damage = Some("its first line is not the state header".into());
        parsed.gaps.push(everything);
        return parsed;
    }
    let from_this_boot = match lines.next().and_then(|line| line.strip_prefix("boot ")) {
        Some(id) => id == boot,
        None => {
            parsed.damage = Some("its second line is not the boot line".into());
            parsed.gaps.push(everything);
            return parsed;
        }
    };
    let (mut last_good, mut in_gap, mut count, mut ended) = (0u32, false, 0usize, false);
    let mut first_bad = None;
    for (number, line) in lines.enumerate() {
        if ended {
            if !line.is_empty() {
                first_bad.get_or_insert(format!("line {} follows the end line", number + 3));
            }
            continue;
        }
        if let Some(total) = line.strip_prefix("end ") {
            ended = true;
            // Lines lost from anywhere could have named any port.
            if total.parse() != Ok(count) {
                parsed.gaps.push(everything);
                first_bad
                    .get_or_insert(format!("its end line counts {total} ports, it has {count}"));
            }
            continue;
        }
        count += 1;
        match port_line(line) {
            Some((port, holder)) if u32::from(port) > last_good => {
                if in_gap {
                    parsed.gaps.push((last_good, u32::from(port)));
                    in_gap = false;
                }
                last_good = u32::from(port);
                if from_this_boot || holder == Holder::Unknown {
                    parsed.held.push((port, holder));
                }
            }
            _ => {
                in_gap = true;
                first_bad.get_or_insert(format!("line {} cannot be read", number + 3));
            }
        }
    }
    if !ended {
        in_gap = true;
        first_bad.get_or_insert("it ends before its end line (torn)".into());
    }
    if in_gap {
        parsed.gaps.push((last_good, 1 << 16));
    }
    parsed.damage = first_bad;
    parsed
}

/// `PORT PID START PIDFS SUM` or `PORT unknown SUM`, with a checksum that
/// matches.
fn port_line(line: &str) -> Option<(u16, Holder)> {
    let (body, sum) = line.rsplit_once(' ')?;
    if format!("{:08x}", checksum(body)) != sum {
        return None;
    }
    let mut words = body.split(' ');
    let port: u16 = words.next()?.parse().ok().filter(|&p| p != 0)?;
    let holder = match (words.next()?, words.next(), words.next(), words.next()) {
        ("unknown", None, None, None) => Holder::Unknown,
        (pid, Some(start), Some(pidfs), None) => Holder::Owner(Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
            pidfs: pidfs.parse().ok()?,
        }),
        _ => return None,
    };
    Some((port, holder))
}

/// FNV-1a: a few lines of code that catch a changed or torn line.
fn checksum(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The file's text, kept line by line: a batch changes a few slots, and
/// formatting every held port again for each write was most of a request's
/// time once thousands were held.
pub struct Lines {
    boot: String,
    /// Each slot's port line, empty while the slot is free.
    lines: Vec<String>,
}

impl Lines {
    /// Every line of `pool` now.
    pub fn new(pool: &Pool, boot: &str) -> Self {
        let mut lines = Lines {
            boot: boot.to_owned(),
            lines: vec![String::new(); pool.len()],
        };
        for slot in 0..pool.len() {
            lines.update(pool, slot);
        }
        lines
    }

    /// Formats `slot`'s line again.
    pub fn update(&mut self, pool: &Pool, slot: usize) {
        let port = pool.port(slot);
        let body = match pool.holder(slot) {
            None => {
                self.lines[slot].clear();
                return;
            }
            Some(Holder::Owner(owner)) => {
                format!("{port} {} {} {}", owner.pid, owner.start, owner.pidfs)
            }
            Some(Holder::Unknown) => format!("{port} unknown"),
        };
        self.lines[slot] = format!("{body} {:08x}\n", checksum(&body));
    }

    /// The whole file.
    pub fn text(&self) -> String {
        let size: usize = self.lines.iter().map(String::len).sum();
        let mut text = String::with_capacity(size + 128);
        text.push_str(HEADER);
        text.push_str("\nboot ");
        text.push_str(&self.boot);
        text.push('\n');
        let mut count = 0;
        for line in self.lines.iter().filter(|line| !line.is_empty()) {
            text.push_str(line);
            count += 1;
        }
        text.push_str(&format!("end {count}\n"));
        text
    }
}

/// Writes `text` to `path` atomically and durably: a new file, fsynced,
/// renamed over the old, and the directory fsynced so the rename lasts.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    let temp = temp_path(path);
    // A temp file left by a server that died mid-write is stale; removing it
    // first lets `create_new` refuse anything else in the way (a symlink
    // planted in a shared directory, say).
    let _ = fs::remove_file(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool::new((15000..15010).collect())
    }

    fn owner(pid: u32) -> Holder {
        Holder::Owner(Owner {
            pid,
            start: 100 + u64::from(pid),
            pidfs: 7 * u64::from(pid),
        })
    }

    fn saved() -> String {
        let mut pool = pool();
        pool.hand_out(2, owner(7));
        pool.hand_out(5, owner(8));
        pool.hand_out(8, Holder::Unknown);
        Lines::new(&pool, "boot-a").text()
    }

    fn load_text(text: &str, boot: &str, accept: bool) -> Result<(Pool, Loaded), String> {
        let dir = std::env::temp_dir().join(format!("portserver-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:08x}", checksum(text)));
        fs::write(&path, text).unwrap();
        let mut pool = pool();
        let loaded = load(&path, &mut pool, boot, accept)?;
        Ok((pool, loaded))
    }

    #[test]
    fn a_written_state_loads_back_as_it_was() {
        let (pool, loaded) = load_text(&saved(), "boot-a", false).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                owned: 2,
                unknown: 1,
                damage: None
            }
        );
        assert_eq!(pool.holder(2), Some(owner(7)));
        assert_eq!(pool.holder(5), Some(owner(8)));
        assert_eq!(pool.holder(8), Some(Holder::Unknown));
    }

    #[test]
    fn owners_from_another_boot_are_gone_but_unknown_holders_stay() {
        let (pool, loaded) = load_text(&saved(), "boot-b", false).unwrap();
        assert_eq!((loaded.owned, loaded.unknown), (0, 1));
        assert_eq!(pool.holder(2), None);
    }

    #[test]
    fn a_damaged_file_is_refused_by_default_with_a_reason() {
        let text = saved();
        let torn = &text[..text.len() - 8];
        let flipped = text.replace("15005 8", "15005 9");
        for damaged in [torn.to_owned(), flipped, "junk".into(), String::new()] {
            let error = load_text(&damaged, "boot-a", false).unwrap_err();
            assert!(error.contains("is damaged ("), "{error}");
            assert!(error.contains("--accept-damaged-state"), "{error}");
        }
    }

    #[test]
    fn accepted_damage_holds_every_port_a_bad_line_may_have_named() {
        // The line for 15005 is changed: everything between 15002 and 15008
        // (the good lines around it) may have been named by it.
        let flipped = saved().replace("15005 8", "15005 9");
        let (pool, loaded) = load_text(&flipped, "boot-a", true).unwrap();
        assert!(loaded.damage.is_some());
        assert_eq!(pool.holder(2), Some(owner(7)));
        for slot in 3..8 {
            assert_eq!(pool.holder(slot), Some(Holder::Unknown), "slot {slot}");
        }
        assert_eq!(pool.holder(9), None);
        assert_eq!(pool.holder(0), None);

        // Torn after the 15002 line: every port above it may be held.
        let text = saved();
        let torn = &text[..text.find("15005").unwrap() + 3];
        let (pool, _) = load_text(torn, "boot-a", true).unwrap();
        assert_eq!(pool.holder(1), None);
        assert_eq!(pool.holder(2), Some(owner(7)));
        for slot in 3..10 {
            assert_eq!(pool.holder(slot), Some(Holder::Unknown), "slot {slot}");
        }

        // No header: nothing can be trusted, so every port is held.
        let (pool, loaded) = load_text("junk", "boot-a", true).unwrap();
        assert_eq!(loaded.unknown, pool.len());
    }
}
