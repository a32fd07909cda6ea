//! The port search of hbutils' `get_free_port`, as plain Rust over a probe.
//!
//! Nothing here touches the host: the probe answers "is this port free?" and
//! "which port would the OS pick?", so the rules (order, the 1024 floor,
//! strict and non-strict) are unit-tested natively with a fake probe. A
//! reservation walks the candidates by the very same rules, but takes each
//! port instead of looking at it: both are [`take_ports`] over a [`Take`].
//! Reservations differ only in where the walk starts ([`NextFit`]).

use std::fmt;

/// Ports below this are never returned, as in hbutils: binding them needs
/// privilege on most systems, and they belong to well-known services.
pub const LOWEST_USABLE_PORT: u16 = 1024;

/// One past the highest port, the largest bound a range may name.
const PORT_LIMIT: u32 = 1 << 16;

/// The most ports one call may ask for: every port from 1024 up. More could
/// never be distinct.
pub const MAX_COUNT: u32 = PORT_LIMIT - LOWEST_USABLE_PORT as u32;

/// How many times, beyond once per candidate found free, the OS may pick a
/// port the call already has before the fallback stops. The ports the OS
/// picks stay held until the call returns, so it can repeat only a candidate
/// that was found free and let go (once: the repeat is held too), unless it
/// is set to hand out held ports again (Linux's `ip_autobind_reuse`), which
/// this bounds.
const OS_REPEATS_ALLOWED: usize = 16;

/// Written to the component's stderr when strict mode has nothing to search.
pub const STRICT_DISABLED_WARNING: &str =
    "warning: no usable ports (>= 1024) were given, so strict mode is disabled\n";

/// Why a question could not be answered; mirrors the WIT `error-code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    AccessDenied,
    NoFreePort(String),
    InvalidArgument(String),
    /// A `wasi:sockets` error-code name.
    Other(String),
}

/// The two questions the search asks of the host.
pub trait Probe {
    /// What keeps a port the OS chose from being chosen again (a bound
    /// socket); the port is let go when it is dropped.
    type Hold;
    /// Whether `port` (never 0) can be bound on loopback right now.
    fn is_free(&mut self, port: u16) -> Result<bool, Error>;
    /// A free loopback port chosen by the OS, held until the hold is
    /// dropped; `None` when the OS has no port left to give.
    fn os_chosen(&mut self) -> Result<Option<(u16, Self::Hold)>, Error>;
}

/// What a search does with a candidate: look at it (`get_free_port`) or hold
/// it (`reserve-port`), so that both follow one set of rules.
pub trait Take {
    /// What a successful search returns: a port number, or a held port.
    /// Dropping it gives the port up.
    type Taken;
    /// `Some` when `port` (never 0) was free and is now taken; `None` when it
    /// is held by someone, so the search moves on.
    fn take(&mut self, port: u16) -> Result<Option<Self::Taken>, Error>;
    /// A free loopback port chosen by the OS, taken; `None` when the OS has
    /// no port left to give.
    fn take_os_chosen(&mut self) -> Result<Option<Self::Taken>, Error>;
    /// The port `taken` stands for.
    fn port_of(taken: &Self::Taken) -> u16;
}

/// A probe used by a search that only looks: the port is "taken" by naming it.
///
/// The ports the OS picks are held until the search is over, though: a port
/// let go at once may be the OS's very next pick, and a search for thousands
/// would then meet its own ports again and again. The answer is still a
/// snapshot, as every hold ends before the call returns.
struct Looking<'a, P: Probe> {
    probe: &'a mut P,
    os_holds: Vec<P::Hold>,
}

impl<'a, P: Probe> Looking<'a, P> {
    fn new(probe: &'a mut P) -> Self {
        Looking {
            probe,
            os_holds: Vec::new(),
        }
    }
}

impl<P: Probe> Take for Looking<'_, P> {
    type Taken = u16;
    fn take(&mut self, port: u16) -> Result<Option<u16>, Error> {
        Ok(self.probe.is_free(port)?.then_some(port))
    }
    fn take_os_chosen(&mut self) -> Result<Option<u16>, Error> {
        // A port the search already has is held too, so that the OS cannot
        // offer it a second time.
        Ok(self.probe.os_chosen()?.map(|(port, hold)| {
            self.os_holds.push(hold);
            port
        }))
    }
    fn port_of(&port: &u16) -> u16 {
        port
    }
}

/// A set of ports with constant-time membership: one bit per port, 8 KiB.
#[derive(Clone)]
pub struct PortSet([u64; 1024]);

impl PortSet {
    pub const fn new() -> Self {
        PortSet([0; 1024])
    }
    pub fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }
    /// Whether `port` was not in the set yet.
    pub fn insert(&mut self, port: u16) -> bool {
        let fresh = !self.contains(port);
        self.0[usize::from(port >> 6)] |= 1 << (port & 63);
        fresh
    }
    pub fn remove(&mut self, port: u16) {
        self.0[usize::from(port >> 6)] &= !(1 << (port & 63));
    }
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}

/// Where `get_free_port` may look; mirrors the WIT `candidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    Range { start: u32, end: u32, step: i32 },
    Explicit(Vec<u16>),
}

/// The candidates as a sequence that can be entered anywhere: a search that
/// resumes at the 1,000th candidate gets there without walking 999.
enum Seq<'a> {
    Listed(&'a [u16]),
    Ranged { start: i64, step: i64, len: usize },
}

impl Seq<'_> {
    fn len(&self) -> usize {
        match *self {
            Seq::Listed(ports) => ports.len(),
            Seq::Ranged { len, .. } => len,
        }
    }

    fn at(&self, index: usize) -> u16 {
        match *self {
            Seq::Listed(ports) => ports[index],
            // Every value of a checked range lies in 0..65536, so the cast is exact.
            Seq::Ranged { start, step, .. } => (start + index as i64 * step) as u16,
        }
    }

    /// Every candidate with its index, starting at `from` and wrapping around
    /// to the first, so each is visited once.
    fn from(&self, from: usize) -> impl Iterator<Item = (usize, u16)> + '_ {
        let from = if from < self.len() { from } else { 0 };
        (from..self.len())
            .chain(0..from)
            .map(move |index| (index, self.at(index)))
    }
}

impl Candidates {
    fn seq(&self) -> Result<Seq<'_>, Error> {
        match *self {
            Candidates::Explicit(ref ports) => Ok(Seq::Listed(ports)),
            Candidates::Range { start, end, step } => range_seq(start, end, step),
        }
    }

    /// Every candidate in order, or why they cannot be walked.
    #[cfg(test)]
    fn ports(&self) -> Result<impl Iterator<Item = u16> + '_, Error> {
        let seq = self.seq()?;
        Ok((0..seq.len()).map(move |index| seq.at(index)))
    }
}

/// Python's `range(start, end, step)` over ports, never materialised.
fn range_seq(start: u32, end: u32, step: i32) -> Result<Seq<'static>, Error> {
    let bad = |why: &str| Error::InvalidArgument(format!("range({start}, {end}, {step}): {why}"));
    if step == 0 {
        return Err(bad("step must not be zero"));
    }
    if start > PORT_LIMIT || end > PORT_LIMIT {
        return Err(bad("start and end must be at most 65536"));
    }
    // Only a descending range can yield its start as a port above 65535.
    if step < 0 && start > end && start >= PORT_LIMIT {
        return Err(bad("a descending range must start at 65535 or below"));
    }
    let (start, end, step) = (i64::from(start), i64::from(end), i64::from(step));
    let count = if step > 0 {
        (end - start + step - 1).div_euclid(step)
    } else {
        (start - end - step - 1).div_euclid(-step)
    }
    .max(0);
    Ok(Seq::Ranged {
        start,
        step,
        // At most 65,536: the bounds were checked above.
        len: count as usize,
    })
}

impl fmt::Display for Candidates {
    /// Python's `repr` of the candidates, as hbutils' error message shows them;
    /// a long list is cut short so the message stays one readable line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        match self {
            Candidates::Range {
                start,
                end,
                step: 1,
            } => write!(f, "range({start}, {end})"),
            Candidates::Range { start, end, step } => write!(f, "range({start}, {end}, {step})"),
            Candidates::Explicit(ports) => {
                f.write_str("[")?;
                for (i, port) in ports.iter().take(SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{port}")?;
                }
                if ports.len() > SHOWN {
                    write!(f, ", ...] ({} ports)", ports.len())
                } else {
                    f.write_str("]")
                }
            }
        }
    }
}

/// hbutils' `is_free_port`, with port 0 refused: it names no port at all.
pub fn is_free_port(probe: &mut impl Probe, port: u16) -> Result<bool, Error> {
    check_port(port)?;
    probe.is_free(port)
}

/// Refuses port 0 where one port is asked about: it names no port at all.
pub fn check_port(port: u16) -> Result<(), Error> {
    if port == 0 {
        return Err(Error::InvalidArgument(
            "port 0 is not a port; it asks the OS to pick one".into(),
        ));
    }
    Ok(())
}

/// hbutils' `get_free_port`. `warn` receives the strict-mode warning.
pub fn get_free_port(
    probe: &mut impl Probe,
    ports: Option<&Candidates>,
    strict: bool,
    warn: impl FnOnce(&str),
) -> Result<u16, Error> {
    first_free(&mut Looking::new(probe), ports, strict, warn)
}

/// `get-free-ports`: `count` distinct free ports, in the candidates' order.
pub fn get_free_ports(
    probe: &mut impl Probe,
    ports: Option<&Candidates>,
    count: u32,
    strict: bool,
    warn: impl FnOnce(&str),
) -> Result<Vec<u16>, Error> {
    take_ports(&mut Looking::new(probe), ports, count, strict, warn, 0).map(|(found, _)| found)
}

/// The search itself: the first candidate `taker` can take, by hbutils'
/// rules. `warn` receives the strict-mode warning.
pub fn first_free<T: Take>(
    taker: &mut T,
    ports: Option<&Candidates>,
    strict: bool,
    warn: impl FnOnce(&str),
) -> Result<T::Taken, Error> {
    let (mut taken, _) = take_ports(taker, ports, 1, strict, warn, 0)?;
    // One was asked for, and an `Ok` has all that were asked for.
    Ok(taken.swap_remove(0))
}

/// Refuses a count no search can meet.
fn check_count(count: u32) -> Result<usize, Error> {
    match count {
        0 => Err(Error::InvalidArgument(
            "count 0 asks for no port; ask for at least 1".into(),
        )),
        c if c > MAX_COUNT => Err(Error::InvalidArgument(format!(
            "count {c} is more than the {MAX_COUNT} ports from 1024 up"
        ))),
        c => Ok(c as usize),
    }
}

/// `count` distinct ports `taker` could take, candidates first (walked once,
/// from the candidate at index `from`, wrapping around), then, unless strict,
/// OS choices for what is missing. Along with them, the index after the last
/// candidate taken, if any was: where a search that continues should start.
///
/// All or nothing: on an error every port taken so far is dropped, so
/// nothing stays held.
pub fn take_ports<T: Take>(
    taker: &mut T,
    ports: Option<&Candidates>,
    count: u32,
    mut strict: bool,
    warn: impl FnOnce(&str),
    from: usize,
) -> Result<(Vec<T::Taken>, Option<usize>), Error> {
    let count = check_count(count)?;
    let seq = match ports {
        Some(candidates) => candidates.seq()?,
        None => Seq::Listed(&[]),
    };
    let mut usable = seq
        .from(from)
        .filter(|&(_, port)| port >= LOWEST_USABLE_PORT)
        .peekable();
    if strict && usable.peek().is_none() {
        warn(STRICT_DISABLED_WARNING);
        strict = false;
    }

    // Only a search for several ports can meet a port twice (a duplicate
    // candidate, an OS choice it already has); one port needs no set.
    let mut seen = (count > 1).then(Box::<PortSet>::default);
    let mut taken = Vec::with_capacity(count);
    let mut next = None;
    let mut refused = false;
    for (index, port) in usable {
        if seen.as_ref().is_some_and(|seen| seen.contains(port)) {
            continue;
        }
        let one = match taker.take(port) {
            Ok(one) => one,
            // A candidate the host or the OS will not let us look at (a
            // Windows excluded port range, a port outside a tenant's block)
            // is passed over, never counted free; a strict search that ends
            // short after one says so rather than claim none was free.
            Err(Error::AccessDenied) => {
                refused = true;
                continue;
            }
            Err(error) => return Err(error),
        };
        if let Some(one) = one {
            if let Some(seen) = seen.as_mut() {
                seen.insert(port);
            }
            taken.push(one);
            next = Some((index + 1) % seq.len());
            if taken.len() == count {
                break;
            }
        }
    }
    if taken.len() < count {
        if let (Some(candidates), true) = (ports, strict) {
            if refused {
                return Err(Error::AccessDenied);
            }
            return Err(Error::NoFreePort(if count == 1 {
                format!("No free port can be allocated within {candidates}")
            } else {
                format!(
                    "No {count} free ports can be allocated within {candidates}: only {} are free",
                    taken.len()
                )
            }));
        }
        let from_candidates = taken.len();
        let ran_out = |from_os| os_ran_out(count, ports, from_candidates, from_os);
        let mut repeats = 0;
        while taken.len() < count {
            let Some(one) = taker.take_os_chosen()? else {
                return Err(ran_out(taken.len() - from_candidates));
            };
            if seen
                .as_mut()
                .is_none_or(|seen| seen.insert(T::port_of(&one)))
            {
                taken.push(one);
            } else if repeats == from_candidates + OS_REPEATS_ALLOWED {
                return Err(ran_out(taken.len() - from_candidates));
            } else {
                repeats += 1;
            }
        }
    }
    Ok((taken, next))
}

/// `no-free-port` when the OS has no more ports to give: how many were asked
/// for, and how many were found among the candidates and from the OS, so that
/// the caller can tell a full ephemeral range from a crowded candidate list.
fn os_ran_out(
    count: usize,
    candidates: Option<&Candidates>,
    from_candidates: usize,
    from_os: usize,
) -> Error {
    let within = candidates.map_or_else(String::new, |c| format!(" within {c}"));
    Error::NoFreePort(match (count, candidates) {
        (1, _) => format!("No free port can be allocated{within}: the OS ran out of ports to pick"),
        (_, None) => format!(
            "No {count} free ports can be allocated: only {from_os} are free, \
             picked by the OS before it ran out of ports"
        ),
        (_, Some(_)) => format!(
            "No {count} free ports can be allocated{within}: only {} are free, \
             {from_candidates} of the candidates and {from_os} picked by the OS \
             before it ran out of ports",
            from_candidates + from_os
        ),
    })
}

/// Where the next reservation starts: just after the candidate the previous
/// one took, when it searched the same candidates. A range that fills up is
/// then walked once in all, instead of once per reservation from its start.
#[derive(Default)]
pub struct NextFit {
    /// The candidates last reserved from, and the index to resume at.
    last: Option<(Candidates, usize)>,
}

impl NextFit {
    /// `count` ports taken by `taker`, as [`take_ports`] takes them, starting
    /// after the previous reservation's when the candidates are the same.
    pub fn take<T: Take>(
        &mut self,
        taker: &mut T,
        ports: Option<&Candidates>,
        count: u32,
        strict: bool,
        warn: impl FnOnce(&str),
    ) -> Result<Vec<T::Taken>, Error> {
        let from = match (&self.last, ports) {
            (Some((last, next)), Some(ports)) if last == ports => *next,
            _ => 0,
        };
        let (taken, next) = take_ports(taker, ports, count, strict, warn, from)?;
        if let (Some(next), Some(ports)) = (next, ports) {
            match &mut self.last {
                // Most reservations repeat the candidates: keep the copy.
                Some((last, at)) if last == ports => *at = next,
                last => *last = Some((ports.clone(), next)),
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ports in `busy` read as held; every probe is recorded in order.
    #[derive(Default)]
    struct FakeProbe {
        busy: HashSet<u16>,
        probed: Vec<u16>,
        deny: bool,
        os_port: u16,
    }

    impl FakeProbe {
        fn busy(ports: impl IntoIterator<Item = u16>) -> Self {
            FakeProbe {
                busy: ports.into_iter().collect(),
                os_port: 50_000,
                ..Default::default()
            }
        }
    }

    impl Probe for FakeProbe {
        type Hold = ();
        fn is_free(&mut self, port: u16) -> Result<bool, Error> {
            assert_ne!(port, 0, "the search must never probe port 0");
            self.probed.push(port);
            if self.deny {
                return Err(Error::AccessDenied);
            }
            Ok(!self.busy.contains(&port))
        }
        /// The same port every time, held or not.
        fn os_chosen(&mut self) -> Result<Option<(u16, ())>, Error> {
            if self.deny {
                return Err(Error::AccessDenied);
            }
            Ok(Some((self.os_port, ())))
        }
    }

    fn range(start: u32, end: u32, step: i32) -> Candidates {
        Candidates::Range { start, end, step }
    }

    fn search(
        probe: &mut FakeProbe,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> (Result<u16, Error>, Option<String>) {
        let mut warning = None;
        let found = get_free_port(probe, ports, strict, |w| warning = Some(w.to_owned()));
        (found, warning)
    }

    fn walk(start: u32, end: u32, step: i32) -> Vec<u16> {
        range(start, end, step).ports().unwrap().collect()
    }

    #[test]
    fn range_walks_like_python_range() {
        assert_eq!(walk(1080, 1120, 10), [1080, 1090, 1100, 1110]);
        assert_eq!(walk(1080, 1121, 10), [1080, 1090, 1100, 1110, 1120]);
        assert_eq!(walk(2000, 1995, -2), [2000, 1998, 1996]);
        assert_eq!(walk(5, 5, 1), Vec::<u16>::new());
        assert_eq!(walk(10, 5, 1), Vec::<u16>::new());
        assert_eq!(walk(5, 10, -1), Vec::<u16>::new());
        assert_eq!(walk(65535, 65536, 1), [65535]);
        assert_eq!(walk(65535, 65532, -1), [65535, 65534, 65533]);
        assert_eq!(walk(1, 65536, 65535), [1]);
        assert_eq!(walk(0, 65536, 1).len(), 65536);
        assert_eq!(walk(65535, 0, i32::MIN), [65535]);
        assert_eq!(walk(0, 65536, i32::MAX), [0]);
    }

    #[test]
    fn full_unprivileged_range_is_walked_lazily() {
        let seq = range_seq(1024, 65536, 1).unwrap();
        assert_eq!(seq.len(), 64512);
        assert_eq!(seq.at(0), 1024);
        assert_eq!(seq.at(64511), 65535);
    }

    #[test]
    fn first_free_candidate_in_order_wins() {
        let mut probe = FakeProbe::busy([1080]);
        let (found, warning) = search(&mut probe, Some(&range(1080, 2080, 10)), true);
        assert_eq!(found, Ok(1090));
        assert_eq!(probe.probed, [1080, 1090]);
        assert_eq!(warning, None);
    }

    #[test]
    fn explicit_list_keeps_the_callers_order() {
        let mut probe = FakeProbe::busy([9000]);
        let ports = Candidates::Explicit(vec![9000, 8080, 8000]);
        assert_eq!(search(&mut probe, Some(&ports), true).0, Ok(8080));
        assert_eq!(probe.probed, [9000, 8080]);
    }

    #[test]
    fn duplicates_are_probed_again_and_harmless() {
        let mut probe = FakeProbe::busy([8000]);
        let ports = Candidates::Explicit(vec![8000, 8000, 8001, 8001]);
        assert_eq!(search(&mut probe, Some(&ports), true).0, Ok(8001));
        assert_eq!(probe.probed, [8000, 8000, 8001]);
    }

    #[test]
    fn ports_below_1024_are_never_probed() {
        let mut probe = FakeProbe::busy([]);
        let (found, warning) = search(&mut probe, Some(&range(22, 1060, 1)), true);
        assert_eq!(found, Ok(1024));
        assert_eq!(probe.probed, [1024]);
        assert_eq!(warning, None);
    }

    #[test]
    fn descending_range_is_searched_downwards() {
        let mut probe = FakeProbe::busy([3000, 2999]);
        assert_eq!(
            search(&mut probe, Some(&range(3000, 1000, -1)), true).0,
            Ok(2998)
        );
        assert_eq!(probe.probed, [3000, 2999, 2998]);
    }

    #[test]
    fn descending_range_stops_at_the_floor() {
        let mut probe = FakeProbe::busy(1024..=1030);
        let (found, _) = search(&mut probe, Some(&range(1030, 0, -1)), true);
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No free port can be allocated within range(1030, 0, -1)".into()
            ))
        );
        assert_eq!(probe.probed, (1024..=1030).rev().collect::<Vec<_>>());
    }

    #[test]
    fn strict_without_free_candidate_names_the_candidates() {
        let mut probe = FakeProbe::busy((1080..2080).step_by(10));
        let (found, warning) = search(&mut probe, Some(&range(1080, 2080, 10)), true);
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No free port can be allocated within range(1080, 2080, 10)".into()
            ))
        );
        assert_eq!(probe.probed.len(), 100);
        assert_eq!(warning, None);
    }

    #[test]
    fn strict_error_shows_a_unit_step_range_as_python_does() {
        let mut probe = FakeProbe::busy([8000, 8001]);
        let (found, _) = search(&mut probe, Some(&range(8000, 8002, 1)), true);
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No free port can be allocated within range(8000, 8002)".into()
            ))
        );
    }

    #[test]
    fn strict_error_lists_a_short_list_and_cuts_a_long_one() {
        let mut probe = FakeProbe::busy([8000, 8080]);
        let short = Candidates::Explicit(vec![8000, 8080]);
        assert_eq!(
            search(&mut probe, Some(&short), true).0,
            Err(Error::NoFreePort(
                "No free port can be allocated within [8000, 8080]".into()
            ))
        );
        let mut probe = FakeProbe::busy(2000..2020);
        let long = Candidates::Explicit((2000..2020).collect());
        assert_eq!(
            search(&mut probe, Some(&long), true).0,
            Err(Error::NoFreePort(
                "No free port can be allocated within [2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007, 2008, 2009, ...] (20 ports)".into()
            ))
        );
    }

    #[test]
    fn non_strict_without_free_candidate_lets_the_os_choose() {
        let mut probe = FakeProbe::busy((1080..2080).step_by(10));
        let (found, warning) = search(&mut probe, Some(&range(1080, 2080, 10)), false);
        assert_eq!(found, Ok(50_000));
        assert_eq!(warning, None);
    }

    #[test]
    fn strict_without_usable_ports_warns_and_falls_back() {
        for ports in [
            None,
            Some(range(22, 80, 1)),
            Some(range(5000, 5000, 1)),
            Some(Candidates::Explicit(vec![80, 443])),
        ] {
            let mut probe = FakeProbe::busy([]);
            let (found, warning) = search(&mut probe, ports.as_ref(), true);
            assert_eq!(found, Ok(50_000), "{ports:?}");
            assert_eq!(
                warning.as_deref(),
                Some(STRICT_DISABLED_WARNING),
                "{ports:?}"
            );
            assert!(probe.probed.is_empty(), "{ports:?}");
        }
    }

    #[test]
    fn non_strict_without_usable_ports_falls_back_silently() {
        let mut probe = FakeProbe::busy([]);
        let (found, warning) = search(&mut probe, None, false);
        assert_eq!((found, warning), (Ok(50_000), None));
    }

    #[test]
    fn step_zero_is_invalid_even_when_not_strict() {
        for strict in [true, false] {
            let mut probe = FakeProbe::busy([]);
            let (found, warning) = search(&mut probe, Some(&range(8000, 9000, 0)), strict);
            assert!(
                matches!(found, Err(Error::InvalidArgument(ref m)) if m.contains("step must not be zero"))
            );
            assert_eq!(warning, None);
            assert!(probe.probed.is_empty());
        }
    }

    #[test]
    fn range_bounds_beyond_65536_are_invalid() {
        for candidates in [
            range(8000, 65537, 1),
            range(70000, 8000, -1),
            range(65536, 1024, -1),
        ] {
            let mut probe = FakeProbe::busy([]);
            let (found, _) = search(&mut probe, Some(&candidates), false);
            assert!(
                matches!(found, Err(Error::InvalidArgument(_))),
                "{candidates:?}: {found:?}"
            );
        }
        // An empty range that starts at the limit yields nothing, as in Python.
        assert_eq!(walk(65536, 65536, -1), Vec::<u16>::new());
    }

    #[test]
    fn huge_explicit_list_is_searched_to_its_end() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut probe = FakeProbe::busy(1024..u16::MAX);
        let (found, _) = search(&mut probe, Some(&Candidates::Explicit(all)), true);
        assert_eq!(found, Ok(u16::MAX));
        assert_eq!(probe.probed.len(), 64512);
    }

    #[test]
    fn denied_candidates_are_passed_over_and_never_free() {
        let mut probe = FakeProbe {
            deny: true,
            ..FakeProbe::busy([])
        };
        // Every candidate is asked about; none counts as free, and a strict
        // search that found nothing says it was refused, not that none was
        // free.
        assert_eq!(
            search(&mut probe, Some(&range(8000, 8100, 1)), true).0,
            Err(Error::AccessDenied)
        );
        assert_eq!(probe.probed, (8000..8100).collect::<Vec<_>>());
        assert_eq!(search(&mut probe, None, false).0, Err(Error::AccessDenied));
        assert_eq!(is_free_port(&mut probe, 8000), Err(Error::AccessDenied));
    }

    #[test]
    fn port_zero_is_invalid_and_not_probed() {
        let mut probe = FakeProbe::busy([]);
        assert!(matches!(
            is_free_port(&mut probe, 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(probe.probed.is_empty());
        assert_eq!(is_free_port(&mut probe, 8000), Ok(true));
    }

    /// Holds every port it takes, as reservations do.
    #[derive(Default)]
    struct FakeHolder {
        busy: HashSet<u16>,
        held: HashSet<u16>,
        os_next: u16,
    }

    impl Take for FakeHolder {
        type Taken = u16;
        fn take(&mut self, port: u16) -> Result<Option<u16>, Error> {
            let free = !self.busy.contains(&port) && self.held.insert(port);
            Ok(free.then_some(port))
        }
        fn take_os_chosen(&mut self) -> Result<Option<u16>, Error> {
            self.os_next += 1;
            self.held.insert(self.os_next);
            Ok(Some(self.os_next))
        }
        fn port_of(&port: &u16) -> u16 {
            port
        }
    }

    #[test]
    fn a_taking_search_follows_the_same_rules_and_never_takes_twice() {
        let mut holder = FakeHolder {
            busy: HashSet::from([2001]),
            os_next: 40_000,
            ..Default::default()
        };
        let ports = range(2000, 2004, 1);
        let mut reserve = |strict| first_free(&mut holder, Some(&ports), strict, |_| ());
        assert_eq!(reserve(true), Ok(2000));
        assert_eq!(reserve(true), Ok(2002));
        assert_eq!(reserve(true), Ok(2003));
        assert_eq!(
            reserve(true),
            Err(Error::NoFreePort(
                "No free port can be allocated within range(2000, 2004)".into()
            ))
        );
        assert_eq!(reserve(false), Ok(40_001));
        assert_eq!(reserve(false), Ok(40_002));
    }

    /// A reserver that remembers what it tried and what it holds, and can be
    /// told to refuse one port, so that "all or nothing" can be watched.
    #[derive(Default)]
    struct Ledger {
        busy: HashSet<u16>,
        tried: Vec<u16>,
        deny: Option<u16>,
        os: Vec<u16>,
    }

    /// A port the ledger holds until it is dropped.
    struct Slip<'a>(u16, &'a std::cell::RefCell<HashSet<u16>>);

    impl Drop for Slip<'_> {
        fn drop(&mut self) {
            self.1.borrow_mut().remove(&self.0);
        }
    }

    struct Holding<'a> {
        ledger: Ledger,
        live: &'a std::cell::RefCell<HashSet<u16>>,
    }

    impl<'a> Take for Holding<'a> {
        type Taken = Slip<'a>;
        fn take(&mut self, port: u16) -> Result<Option<Slip<'a>>, Error> {
            self.ledger.tried.push(port);
            if self.ledger.deny == Some(port) {
                return Err(Error::AccessDenied);
            }
            let free = !self.ledger.busy.contains(&port) && self.live.borrow_mut().insert(port);
            Ok(free.then(|| Slip(port, self.live)))
        }
        fn take_os_chosen(&mut self) -> Result<Option<Slip<'a>>, Error> {
            if self.ledger.os.is_empty() {
                return Ok(None);
            }
            let port = self.ledger.os.remove(0);
            self.live.borrow_mut().insert(port);
            Ok(Some(Slip(port, self.live)))
        }
        fn port_of(taken: &Slip<'a>) -> u16 {
            taken.0
        }
    }

    fn ports_of(taken: &[Slip<'_>]) -> Vec<u16> {
        taken.iter().map(|slip| slip.0).collect()
    }

    #[test]
    fn port_set_answers_membership_for_every_port() {
        let mut set = PortSet::new();
        for port in [0, 1, 63, 64, 1024, 65535] {
            assert!(!set.contains(port));
            assert!(set.insert(port));
            assert!(!set.insert(port));
            assert!(set.contains(port));
        }
        set.remove(64);
        assert!(!set.contains(64) && set.contains(63) && set.contains(1024));
    }

    #[test]
    fn several_ports_are_the_first_free_ones_in_order() {
        let mut probe = FakeProbe::busy([2001, 2003]);
        let found = get_free_ports(&mut probe, Some(&range(2000, 2010, 1)), 3, true, |_| ());
        assert_eq!(found, Ok(vec![2000, 2002, 2004]));
        assert_eq!(probe.probed, [2000, 2001, 2002, 2003, 2004]);
    }

    #[test]
    fn several_ports_are_distinct_however_often_a_candidate_repeats() {
        let mut probe = FakeProbe::busy([]);
        let ports = Candidates::Explicit(vec![3000, 3000, 3001, 3000, 3001, 3002]);
        let found = get_free_ports(&mut probe, Some(&ports), 3, true, |_| ());
        assert_eq!(found, Ok(vec![3000, 3001, 3002]));
        // A repeat of a port already found is not asked about again.
        assert_eq!(probe.probed, [3000, 3001, 3002]);
    }

    #[test]
    fn too_few_free_while_strict_says_how_many_were_found() {
        let mut probe = FakeProbe::busy([2001, 2002]);
        let found = get_free_ports(&mut probe, Some(&range(2000, 2004, 1)), 3, true, |_| ());
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No 3 free ports can be allocated within range(2000, 2004): only 2 are free".into()
            ))
        );
    }

    #[test]
    fn too_few_free_without_strict_are_filled_with_distinct_os_choices() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger {
                busy: HashSet::from([2001]),
                // The OS names a candidate already taken, then the same port
                // twice: each repeat is skipped.
                os: vec![2000, 40_000, 40_000, 40_001],
                ..Default::default()
            },
            live: &live,
        };
        let (taken, next) = take_ports(
            &mut holder,
            Some(&range(2000, 2002, 1)),
            3,
            false,
            |_| (),
            0,
        )
        .unwrap();
        assert_eq!(ports_of(&taken), [2000, 40_000, 40_001]);
        assert_eq!(next, Some(1));
    }

    #[test]
    fn an_os_that_keeps_repeating_a_held_port_is_an_error_not_a_loop() {
        let mut probe = FakeProbe::busy([]);
        let found = get_free_ports(&mut probe, None, 2, false, |_| ());
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No 2 free ports can be allocated: only 1 are free, \
                 picked by the OS before it ran out of ports"
                    .into()
            ))
        );
    }

    /// An OS that offers the lowest port of its range that nobody holds, as
    /// Linux's search does from wherever it starts: a port let go is offered
    /// again at once. `holds` is every port bound by the search's holds.
    struct LowestFirst {
        range: std::ops::Range<u16>,
        busy: HashSet<u16>,
        holds: std::rc::Rc<std::cell::RefCell<std::collections::BTreeSet<u16>>>,
        most_held: usize,
    }

    /// A socket the search keeps bound to a port the OS gave it.
    struct Bound(
        u16,
        std::rc::Rc<std::cell::RefCell<std::collections::BTreeSet<u16>>>,
    );

    impl Drop for Bound {
        fn drop(&mut self) {
            self.1.borrow_mut().remove(&self.0);
        }
    }

    impl LowestFirst {
        fn new(range: std::ops::Range<u16>, busy: impl IntoIterator<Item = u16>) -> Self {
            LowestFirst {
                range,
                busy: busy.into_iter().collect(),
                holds: Default::default(),
                most_held: 0,
            }
        }
        fn held(&self, port: u16) -> bool {
            self.busy.contains(&port) || self.holds.borrow().contains(&port)
        }
    }

    impl Probe for LowestFirst {
        type Hold = Bound;
        fn is_free(&mut self, port: u16) -> Result<bool, Error> {
            Ok(!self.held(port))
        }
        fn os_chosen(&mut self) -> Result<Option<(u16, Bound)>, Error> {
            let Some(port) = self.range.clone().find(|&port| !self.held(port)) else {
                return Ok(None);
            };
            self.holds.borrow_mut().insert(port);
            self.most_held = self.most_held.max(self.holds.borrow().len());
            Ok(Some((port, Bound(port, self.holds.clone()))))
        }
    }

    #[test]
    fn thousands_from_an_os_that_reoffers_what_is_let_go_are_distinct_and_let_go_after() {
        for count in [1000u16, 5000] {
            let mut os = LowestFirst::new(40_000..60_000, [40_001, 40_500]);
            let found = get_free_ports(&mut os, None, count.into(), false, |_| ()).unwrap();
            let expected: Vec<u16> = (40_000..60_000)
                .filter(|port| ![40_001, 40_500].contains(port))
                .take(count.into())
                .collect();
            assert_eq!(found, expected, "count {count}");
            // Every port was held at once, and none is any more: a snapshot.
            assert_eq!(os.most_held, usize::from(count));
            assert!(os.holds.borrow().is_empty());
        }
    }

    #[test]
    fn an_os_that_runs_out_is_no_free_port_saying_how_many_it_gave() {
        let mut os = LowestFirst::new(40_000..40_700, []);
        let found = get_free_ports(&mut os, None, 1000, false, |_| ());
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No 1000 free ports can be allocated: only 700 are free, \
                 picked by the OS before it ran out of ports"
                    .into()
            ))
        );
        assert!(os.holds.borrow().is_empty());

        let mut os = LowestFirst::new(40_000..40_700, [41_001]);
        let found = get_free_ports(
            &mut os,
            Some(&range(41_000, 41_003, 1)),
            1000,
            false,
            |_| (),
        );
        assert_eq!(
            found,
            Err(Error::NoFreePort(
                "No 1000 free ports can be allocated within range(41000, 41003): only 702 are \
                 free, 2 of the candidates and 700 picked by the OS before it ran out of ports"
                    .into()
            ))
        );

        let mut os = LowestFirst::new(40_000..40_001, [40_000]);
        assert_eq!(
            get_free_port(&mut os, None, false, |_| ()),
            Err(Error::NoFreePort(
                "No free port can be allocated: the OS ran out of ports to pick".into()
            ))
        );
    }

    #[test]
    fn the_os_may_reoffer_every_candidate_found_free_once_and_the_fill_goes_on() {
        // 30 free candidates let go, then an OS that offers each of them again
        // before any port of its own: more repeats than the spare allowance.
        let mut os = LowestFirst::new(40_000..41_000, []);
        let found = get_free_ports(&mut os, Some(&range(40_000, 40_030, 1)), 40, false, |_| ());
        assert_eq!(found, Ok((40_000..40_040).collect()));
        assert!(os.holds.borrow().is_empty());
    }

    #[test]
    fn several_ports_without_usable_candidates_while_strict_warn_and_use_the_os() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger {
                os: vec![40_000, 40_001],
                ..Default::default()
            },
            live: &live,
        };
        let mut warning = None;
        let (taken, next) = take_ports(
            &mut holder,
            Some(&Candidates::Explicit(vec![80, 443])),
            2,
            true,
            |w| warning = Some(w.to_owned()),
            0,
        )
        .unwrap();
        assert_eq!(ports_of(&taken), [40_000, 40_001]);
        assert_eq!(next, None);
        assert_eq!(warning.as_deref(), Some(STRICT_DISABLED_WARNING));
    }

    #[test]
    fn a_count_of_zero_or_past_every_usable_port_is_invalid() {
        for count in [0, MAX_COUNT + 1, u32::MAX] {
            let mut probe = FakeProbe::busy([]);
            let found = get_free_ports(&mut probe, None, count, false, |_| ());
            assert!(
                matches!(found, Err(Error::InvalidArgument(ref m)) if m.contains("count")),
                "{count}: {found:?}"
            );
            assert!(probe.probed.is_empty());
        }
        let all: Vec<u16> = (1024..=u16::MAX).collect();
        let mut probe = FakeProbe::busy([]);
        let found = get_free_ports(
            &mut probe,
            Some(&Candidates::Explicit(all)),
            MAX_COUNT,
            true,
            |_| (),
        );
        assert_eq!(found.map(|f| f.len()), Ok(MAX_COUNT as usize));
    }

    #[test]
    fn a_failed_strict_search_for_several_gives_back_what_it_took() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger {
                busy: HashSet::from([2002]),
                ..Default::default()
            },
            live: &live,
        };
        let found = take_ports(&mut holder, Some(&range(2000, 2003, 1)), 3, true, |_| (), 0);
        assert!(matches!(found, Err(Error::NoFreePort(_))));
        assert_eq!(holder.ledger.tried, [2000, 2001, 2002]);
        assert!(live.borrow().is_empty(), "still held: {:?}", live.borrow());
    }

    #[test]
    fn a_denied_port_midway_is_passed_over() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger {
                deny: Some(2002),
                ..Default::default()
            },
            live: &live,
        };
        let found = take_ports(&mut holder, Some(&range(2000, 2010, 1)), 5, true, |_| (), 0);
        let (found, _) = found.unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(
            *live.borrow(),
            HashSet::from([2000, 2001, 2003, 2004, 2005])
        );
    }

    #[test]
    fn a_strict_search_short_after_a_denial_is_access_denied_and_gives_back_what_it_took() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger {
                deny: Some(2002),
                ..Default::default()
            },
            live: &live,
        };
        let found = take_ports(&mut holder, Some(&range(2000, 2005, 1)), 5, true, |_| (), 0);
        assert!(matches!(found, Err(Error::AccessDenied)));
        assert!(live.borrow().is_empty(), "still held: {:?}", live.borrow());
    }

    #[test]
    fn reservations_over_the_same_candidates_resume_after_the_last_one_taken() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger::default(),
            live: &live,
        };
        let ports = range(2000, 2006, 1);
        let mut next_fit = NextFit::default();
        let mut kept = Vec::new();
        for _ in 0..2 {
            kept.extend(
                next_fit
                    .take(&mut holder, Some(&ports), 1, true, |_| ())
                    .unwrap(),
            );
        }
        assert_eq!(ports_of(&kept), [2000, 2001]);
        // 2000 is free again, yet the walk goes on from 2002 ...
        kept.remove(0);
        holder.ledger.tried.clear();
        let third = next_fit
            .take(&mut holder, Some(&ports), 2, true, |_| ())
            .unwrap();
        assert_eq!(ports_of(&third), [2002, 2003]);
        assert_eq!(holder.ledger.tried, [2002, 2003]);
        kept.extend(third);
        // ... and wraps around to the start when it reaches the end.
        holder.ledger.tried.clear();
        let fourth = next_fit
            .take(&mut holder, Some(&ports), 3, true, |_| ())
            .unwrap();
        assert_eq!(ports_of(&fourth), [2004, 2005, 2000]);
        assert_eq!(holder.ledger.tried, [2004, 2005, 2000]);
    }

    #[test]
    fn a_full_wrap_around_tries_every_candidate_once_before_giving_up() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger::default(),
            live: &live,
        };
        let ports = range(2000, 2004, 1);
        let mut next_fit = NextFit::default();
        let kept = next_fit
            .take(&mut holder, Some(&ports), 3, true, |_| ())
            .unwrap();
        holder.ledger.busy.insert(2003);
        holder.ledger.tried.clear();
        let found = next_fit.take(&mut holder, Some(&ports), 1, true, |_| ());
        assert!(matches!(found, Err(Error::NoFreePort(_))));
        assert_eq!(holder.ledger.tried, [2003, 2000, 2001, 2002]);
        drop(kept);
    }

    #[test]
    fn other_candidates_start_from_their_first_and_forget_the_old_place() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger::default(),
            live: &live,
        };
        let (first, second) = (range(2000, 2004, 1), Candidates::Explicit(vec![2003, 2002]));
        let mut next_fit = NextFit::default();
        let a = next_fit
            .take(&mut holder, Some(&first), 1, true, |_| ())
            .unwrap();
        let b = next_fit
            .take(&mut holder, Some(&second), 1, true, |_| ())
            .unwrap();
        let c = next_fit
            .take(&mut holder, Some(&first), 1, true, |_| ())
            .unwrap();
        assert_eq!([a[0].0, b[0].0, c[0].0], [2000, 2003, 2001]);
        // An OS choice leaves the place where it was.
        let d = next_fit.take(&mut holder, None, 1, false, |_| ());
        assert!(d.is_err(), "the ledger's OS has nothing to give");
        let e = next_fit
            .take(&mut holder, Some(&second), 1, true, |_| ())
            .unwrap();
        assert_eq!(e[0].0, 2002);
    }

    #[test]
    fn a_search_that_fails_leaves_the_next_one_where_it_was() {
        let live = std::cell::RefCell::default();
        let mut holder = Holding {
            ledger: Ledger::default(),
            live: &live,
        };
        let ports = range(2000, 2004, 1);
        let mut next_fit = NextFit::default();
        let a = next_fit
            .take(&mut holder, Some(&ports), 1, true, |_| ())
            .unwrap();
        assert!(
            next_fit
                .take(&mut holder, Some(&ports), 4, true, |_| ())
                .is_err()
        );
        let b = next_fit
            .take(&mut holder, Some(&ports), 1, true, |_| ())
            .unwrap();
        assert_eq!([a[0].0, b[0].0], [2000, 2001]);
    }
}
