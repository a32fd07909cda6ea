//! The ports the server manages and who holds each, in port order. The walk
//! rotates through them as portserver.py's does, so a port given back is the
//! last to be handed out again: a client that was slow to close it gets the
//! most time.

use super::owner::Owner;

/// Who holds a port of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Handed to this process; it is the pool's again once the process is gone.
    Owner(Owner),
    /// A damaged state file may have recorded it for a live process: it is
    /// never handed out by this server (see `state`).
    Unknown,
}

/// Parsed `--portserver_static_pool`: comma-separated inclusive `N-P` ranges.
pub fn parse_ranges(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for range in text.split(',') {
        let bad = || format!("'{range}' is not a port range N-P (1 to 65535, N <= P)");
        let (start, end) = range.split_once('-').ok_or_else(bad)?;
        let start: u16 = start.trim().parse().map_err(|_| bad())?;
        let end: u16 = end.trim().parse().map_err(|_| bad())?;
        if start == 0 || start > end {
            return Err(bad());
        }
        ports.extend(start..=end);
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The managed ports and their holders.
///
/// Changes since the last [`Pool::commit`] can be undone with
/// [`Pool::roll_back`]: a batch whose state write fails leaves the pool as
/// the state file has it, so nothing is held in memory that a restart would
/// not know of, and nothing is freed that its holder was told it still has.
#[derive(Debug)]
pub struct Pool {
    ports: Vec<u16>,
    holders: Vec<Option<Holder>>,
    /// How many slots have a holder.
    held: usize,
    /// Where the next walk starts: just past the last port handed out.
    next: usize,
    /// Slots whose holder changed since [`Pool::take_changed`] last ran.
    changed: Vec<usize>,
    /// Each change since the last commit, with the holder it replaced.
    undo: Vec<(usize, Option<Holder>)>,
    /// Where the walk started at the last commit.
    committed_next: usize,
}

impl Pool {
    /// `ports`, sorted and without duplicates, none held.
    pub fn new(ports: Vec<u16>) -> Self {
        let holders = vec![None; ports.len()];
        Pool {
            ports,
            holders,
            held: 0,
            next: 0,
            changed: Vec::new(),
            undo: Vec::new(),
            committed_next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn port(&self, slot: usize) -> u16 {
        self.ports[slot]
    }

    pub fn holder(&self, slot: usize) -> Option<Holder> {
        self.holders[slot]
    }

    /// The slot of `port`, if the pool manages it.
    pub fn slot(&self, port: u16) -> Option<usize> {
        self.ports.binary_search(&port).ok()
    }

    /// Every slot once, starting where the last walk left off.
    pub fn walk(&self) -> impl Iterator<Item = usize> + use<> {
        let (next, len) = (self.next, self.ports.len());
        (0..len).map(move |i| (next + i) % len)
    }

    /// How many ports are held.
    pub fn held_count(&self) -> usize {
        self.held
    }

    /// Records `holder` for `slot`; the next walk starts after it.
    pub fn hand_out(&mut self, slot: usize, holder: Holder) {
        self.record(slot, Some(holder));
        self.next = (slot + 1) % self.ports.len().max(1);
    }

    /// Sets the holder without moving the walk: for a loaded state, a
    /// release, or a dead holder's port reclaimed.
    pub fn record(&mut self, slot: usize, holder: Option<Holder>) {
        let old = std::mem::replace(&mut self.holders[slot], holder);
        self.held = self.held + usize::from(holder.is_some()) - usize::from(old.is_some());
        self.undo.push((slot, old));
        self.changed.push(slot);
    }

    /// Whether anything changed since the last commit.
    pub fn has_uncommitted(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Keeps every change made since the last commit.
    pub fn commit(&mut self) {
        self.undo.clear();
        self.committed_next = self.next;
    }

    /// Undoes every change made since the last commit; the slots it touched
    /// stay in the changed list, so their state lines are formatted again.
    pub fn roll_back(&mut self) {
        while let Some((slot, old)) = self.undo.pop() {
            let now = std::mem::replace(&mut self.holders[slot], old);
            self.held = self.held + usize::from(old.is_some()) - usize::from(now.is_some());
            self.changed.push(slot);
        }
        self.next = self.committed_next;
    }

    /// The slots changed since the last call (a slot may repeat).
    pub fn take_changed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.changed)
    }

    /// Every held port, in port order.
    #[cfg(test)]
    pub fn held(&self) -> impl Iterator<Item = (u16, Holder)> + '_ {
        self.ports
            .iter()
            .zip(&self.holders)
            .filter_map(|(&port, holder)| holder.map(|holder| (port, holder)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_comma_separated_and_merged() {
        assert_eq!(
            parse_ranges("15000-15002").unwrap(),
            vec![15000, 15001, 15002]
        );
        assert_eq!(parse_ranges("9-10,5-6,10-10").unwrap(), vec![5, 6, 9, 10]);
        for bad in ["", "15000", "0-5", "5-4", "1-65536", "a-b", "1-2,"] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_walk_resumes_after_the_port_last_handed_out_and_wraps() {
        let mut pool = Pool::new(vec![10, 11, 12]);
        assert_eq!(pool.walk().collect::<Vec<_>>(), [0, 1, 2]);
        let owner = Owner {
            pid: 5,
            start: 9,
            pidfs: 1,
        };
        pool.hand_out(1, Holder::Owner(owner));
        assert_eq!(pool.walk().collect::<Vec<_>>(), [2, 0, 1]);
        pool.hand_out(2, Holder::Unknown);
        assert_eq!(pool.walk().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            pool.held().collect::<Vec<_>>(),
            [(11, Holder::Owner(owner)), (12, Holder::Unknown)]
        );
        assert_eq!(pool.slot(12), Some(2));
        assert_eq!(pool.slot(13), None);
    }

    #[test]
    fn a_roll_back_restores_the_holders_the_count_and_the_walk_of_the_last_commit() {
        let owner = |pid| {
            Holder::Owner(Owner {
                pid,
                start: 9,
                pidfs: 1,
            })
        };
        let mut pool = Pool::new(vec![10, 11, 12, 13]);
        pool.hand_out(0, owner(5));
        pool.commit();
        let before: Vec<_> = pool.held().collect();
        // A batch: one port released, two handed out, one of them twice.
        pool.record(0, None);
        pool.hand_out(1, owner(6));
        pool.hand_out(2, owner(7));
        pool.hand_out(2, owner(8));
        assert_eq!(pool.held_count(), 2);
        pool.roll_back();
        assert_eq!(pool.held().collect::<Vec<_>>(), before);
        assert_eq!(pool.held_count(), 1);
        assert_eq!(pool.walk().collect::<Vec<_>>(), [1, 2, 3, 0]);
        // Every touched slot is listed for its state line.
        let mut changed = pool.take_changed();
        changed.sort_unstable();
        changed.dedup();
        assert_eq!(changed, [0, 1, 2]);
    }
}
