//! The port search of hbutils' `get_free_port`, as plain Rust over a probe.
//!
//! Nothing here touches the host: the probe answers "is this port free?" and
//! "which port would the OS pick?", so the rules (order, the 1024 floor,
//! strict and non-strict) are unit-tested natively with a fake probe. A
//! reservation walks the candidates by the very same rules, but takes each
//! port instead of looking at it: both are [`first_free`] over a [`Take`].

use std::fmt;

/// Ports below this are never returned, as in hbutils: binding them needs
/// privilege on most systems, and they belong to well-known services.
pub const LOWEST_USABLE_PORT: u16 = 1024;

/// One past the highest port, the largest bound a range may name.
const PORT_LIMIT: u32 = 1 << 16;

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
    /// Whether `port` (never 0) can be bound on loopback right now.
    fn is_free(&mut self, port: u16) -> Result<bool, Error>;
    /// A free loopback port chosen by the OS.
    fn os_chosen(&mut self) -> Result<u16, Error>;
}

/// What a search does with a candidate: look at it (`get_free_port`) or hold
/// it (`reserve-port`), so that both follow one set of rules.
pub trait Take {
    /// What a successful search returns: a port number, or a held port.
    type Taken;
    /// `Some` when `port` (never 0) was free and is now taken; `None` when it
    /// is held by someone, so the search moves on.
    fn take(&mut self, port: u16) -> Result<Option<Self::Taken>, Error>;
    /// A free loopback port chosen by the OS, taken.
    fn take_os_chosen(&mut self) -> Result<Self::Taken, Error>;
}

/// A probe used by a search that only looks: the port is "taken" by naming it.
struct Looking<'a, P>(&'a mut P);

impl<P: Probe> Take for Looking<'_, P> {
    type Taken = u16;
    fn take(&mut self, port: u16) -> Result<Option<u16>, Error> {
        Ok(self.0.is_free(port)?.then_some(port))
    }
    fn take_os_chosen(&mut self) -> Result<u16, Error> {
        self.0.os_chosen()
    }
}

/// Where `get_free_port` may look; mirrors the WIT `candidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    Range { start: u32, end: u32, step: i32 },
    Explicit(Vec<u16>),
}

impl Candidates {
    /// Every candidate in order, or why they cannot be walked.
    fn ports(&self) -> Result<impl Iterator<Item = u16> + '_, Error> {
        let (listed, ranged) = match *self {
            Candidates::Explicit(ref ports) => (Some(ports.iter().copied()), None),
            Candidates::Range { start, end, step } => (None, Some(range_ports(start, end, step)?)),
        };
        Ok(listed
            .into_iter()
            .flatten()
            .chain(ranged.into_iter().flatten()))
    }
}

/// Python's `range(start, end, step)` over ports, walked lazily.
fn range_ports(start: u32, end: u32, step: i32) -> Result<impl Iterator<Item = u16>, Error> {
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
    // Every yielded value lies in 0..65536, checked above, so the cast is exact.
    Ok((0..count).map(move |i| (start + i * step) as u16))
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
    first_free(&mut Looking(probe), ports, strict, warn)
}

/// The search itself: the first candidate `taker` can take, by hbutils'
/// rules. `warn` receives the strict-mode warning.
pub fn first_free<T: Take>(
    taker: &mut T,
    ports: Option<&Candidates>,
    mut strict: bool,
    warn: impl FnOnce(&str),
) -> Result<T::Taken, Error> {
    let mut usable = match ports {
        Some(candidates) => Some(candidates.ports()?),
        None => None,
    }
    .into_iter()
    .flatten()
    .filter(|&port| port >= LOWEST_USABLE_PORT)
    .peekable();

    if strict && usable.peek().is_none() {
        warn(STRICT_DISABLED_WARNING);
        strict = false;
    }
    for port in usable {
        if let Some(taken) = taker.take(port)? {
            return Ok(taken);
        }
    }
    match ports {
        Some(candidates) if strict => Err(Error::NoFreePort(format!(
            "No free port can be allocated within {candidates}"
        ))),
        _ => taker.take_os_chosen(),
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
        fn is_free(&mut self, port: u16) -> Result<bool, Error> {
            assert_ne!(port, 0, "the search must never probe port 0");
            self.probed.push(port);
            if self.deny {
                return Err(Error::AccessDenied);
            }
            Ok(!self.busy.contains(&port))
        }
        fn os_chosen(&mut self) -> Result<u16, Error> {
            if self.deny {
                return Err(Error::AccessDenied);
            }
            Ok(self.os_port)
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
        let mut ports = range_ports(1024, 65536, 1).unwrap();
        assert_eq!(ports.size_hint(), (64512, Some(64512)));
        assert_eq!(ports.next(), Some(1024));
        assert_eq!(ports.last(), Some(65535));
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
    fn denied_probe_is_an_error_never_free() {
        let mut probe = FakeProbe {
            deny: true,
            ..FakeProbe::busy([])
        };
        assert_eq!(
            search(&mut probe, Some(&range(8000, 8100, 1)), true).0,
            Err(Error::AccessDenied)
        );
        assert_eq!(
            probe.probed,
            [8000],
            "the search must stop at the first denial"
        );
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
        fn take_os_chosen(&mut self) -> Result<u16, Error> {
            self.os_next += 1;
            self.held.insert(self.os_next);
            Ok(self.os_next)
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
}
