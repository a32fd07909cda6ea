//! The search rules of `hbutils-port`, written out the slow and obvious way,
//! as hbutils, the README and `wit/port.wit` state them.
//!
//! One oracle for both property tests: the native one (the root crate's
//! `tests/search_property.rs`, every rule over a simulated host, every port
//! probed compared in order) and the one through wasmtime
//! (`host-example/tests/all/search_property.rs`, against ports really held).
//!
//! It materialises Python's `range(start, end, step)` by stepping until the
//! bound, keeps the ports >= 1024, and scans. It shares nothing with
//! `src/search.rs`, not even its types: each test maps its own candidates
//! and errors onto these, so a rule broken there (the floor, the walk of a
//! descending range, the strict fallback, a message) shows up as a
//! disagreement. Texts and limits are literals rather than `search.rs`'s
//! constants for the same reason: a reworded warning or message is a change
//! callers see, so it must fail a property too.

use std::fmt::Write as _;

/// The lowest port a search may return.
const FLOOR: u16 = 1024;

/// The largest bound a range may name.
const HIGHEST_BOUND: u32 = 65536;

/// What strict mode with nothing usable to search writes to stderr.
pub const WARNING: &str =
    "warning: no usable ports (>= 1024) were given, so strict mode is disabled\n";

/// The candidates, as a caller states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Python's `range(start, end, step)`.
    Range { start: u32, end: u32, step: i32 },
    /// These ports, in this order.
    List(Vec<u16>),
}

/// How a search ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<E> {
    /// This candidate.
    Port(u16),
    /// No candidate, and the search falls back to a port the OS picks (the
    /// caller knows what its OS would say).
    OsChoice,
    /// `no-free-port`, with this message.
    NoFreePort(String),
    /// `invalid-argument`, with this message; nothing is looked at.
    InvalidArgument(String),
    /// Asking about a port failed with this (the host refused to let the
    /// search look): the port was passed over, and a strict search found
    /// nothing, so it fails with the first refusal.
    Failed(E),
}

/// What one search did, as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<E> {
    pub found: Found<E>,
    /// The strict-mode warning, if the search writes it.
    pub warning: Option<&'static str>,
    /// Every port the search asks the host about, in order.
    pub probed: Vec<u16>,
}

/// Every value of Python's `range(start, end, step)`, or the
/// `invalid-argument` message for a range that cannot name ports.
pub fn python_range(start: u32, end: u32, step: i32) -> Result<Vec<u16>, String> {
    let invalid = |why: &str| Err(format!("range({start}, {end}, {step}): {why}"));
    if step == 0 {
        return invalid("step must not be zero");
    }
    if start > HIGHEST_BOUND || end > HIGHEST_BOUND {
        return invalid("start and end must be at most 65536");
    }
    let (end, step) = (i64::from(end), i64::from(step));
    let mut values = Vec::new();
    let mut value = i64::from(start);
    while (step > 0 && value < end) || (step < 0 && value > end) {
        values.push(value);
        value += step;
    }
    // Bounds are at most 65536, so only a descending range's first value can
    // miss the port numbers; the rule is stated as "every value is a port" so
    // that it does not lean on that argument.
    if values.iter().any(|&v| v > i64::from(u16::MAX)) {
        return invalid("a descending range must start at 65535 or below");
    }
    Ok(values.into_iter().map(|v| v as u16).collect())
}

/// Every candidate in the caller's order, unfiltered; none when absent.
pub fn candidates(ports: Option<&Ports>) -> Result<Vec<u16>, String> {
    match ports {
        None => Ok(Vec::new()),
        Some(&Ports::Range { start, end, step }) => python_range(start, end, step),
        Some(Ports::List(list)) => Ok(list.clone()),
    }
}

/// The candidates a search may return, in order.
pub fn usable(ports: &[u16]) -> Vec<u16> {
    ports.iter().copied().filter(|&p| p >= FLOOR).collect()
}

/// Python's `repr` of the candidates, except that a list past ten entries is
/// cut short and says how long it was.
pub fn shown(ports: &Ports) -> String {
    match ports {
        Ports::Range {
            start,
            end,
            step: 1,
        } => format!("range({start}, {end})"),
        Ports::Range { start, end, step } => format!("range({start}, {end}, {step})"),
        Ports::List(list) => {
            let mut text = String::from("[");
            for (i, port) in list.iter().take(10).enumerate() {
                let comma = if i == 0 { "" } else { ", " };
                write!(text, "{comma}{port}").expect("a String takes any text");
            }
            if list.len() > 10 {
                write!(text, ", ...] ({} ports)", list.len()).expect("a String takes any text");
            } else {
                text.push(']');
            }
            text
        }
    }
}

/// hbutils' `get_free_port`: `is_free` answers for one port, or fails (the
/// host refuses to let it look), which passes that port over.
pub fn search<E>(
    ports: Option<&Ports>,
    strict: bool,
    is_free: impl FnMut(u16) -> Result<bool, E>,
) -> Outcome<E> {
    search_from(ports, strict, 0, is_free).0
}

/// `reserve-port`: the same search, but the candidates are tried from the
/// one at index `from` to the last and then from the first, as a reservation
/// continues after the candidate the previous one took. Also returns the
/// index after the candidate taken, if one was.
pub fn search_from<E>(
    ports: Option<&Ports>,
    strict: bool,
    from: usize,
    mut is_free: impl FnMut(u16) -> Result<bool, E>,
) -> (Outcome<E>, Option<usize>) {
    let all = match candidates(ports) {
        Ok(all) => all,
        Err(invalid) => {
            let outcome = Outcome {
                found: Found::InvalidArgument(invalid),
                warning: None,
                probed: Vec::new(),
            };
            return (outcome, None);
        }
    };
    let warning = (strict && usable(&all).is_empty()).then_some(WARNING);
    let strict = strict && warning.is_none();
    let from = if from < all.len() { from } else { 0 };
    let mut order: Vec<usize> = (from..all.len()).collect();
    order.extend(0..from);
    let mut probed = Vec::new();
    let mut refused = None;
    for index in order {
        let port = all[index];
        if port < FLOOR {
            continue;
        }
        probed.push(port);
        match is_free(port) {
            Ok(false) => continue,
            Ok(true) => {
                let outcome = Outcome {
                    found: Found::Port(port),
                    warning,
                    probed,
                };
                return (outcome, Some((index + 1) % all.len()));
            }
            Err(failure) => {
                refused.get_or_insert(failure);
            }
        }
    }
    let found = match (ports, refused) {
        (Some(_), Some(failure)) if strict => Found::Failed(failure),
        (Some(ports), None) if strict => Found::NoFreePort(format!(
            "No free port can be allocated within {}",
            shown(ports)
        )),
        _ => Found::OsChoice,
    };
    let outcome = Outcome {
        found,
        warning,
        probed,
    };
    (outcome, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle is only as good as its `range`: these are CPython's answers.
    #[test]
    fn python_range_is_cpythons_range() {
        let cases: [(_, &[u16]); 11] = [
            ((10, 0, -3), &[10, 7, 4, 1]),
            ((0, 10, 3), &[0, 3, 6, 9]),
            ((1030, 1020, -4), &[1030, 1026, 1022]),
            ((65535, 65530, -2), &[65535, 65533, 65531]),
            ((5, 5, -1), &[]),
            ((3, 9, -2), &[]),
            ((9, 3, 2), &[]),
            ((0, 65536, 40000), &[0, 40000]),
            ((65535, 0, i32::MIN), &[65535]),
            ((1, 65536, i32::MAX), &[1]),
            ((65536, 65536, -1), &[]),
        ];
        for ((start, end, step), python) in cases {
            assert_eq!(
                python_range(start, end, step).as_deref(),
                Ok(python),
                "range({start}, {end}, {step})"
            );
        }
        assert_eq!(python_range(0, 65536, 1).map(|r| r.len()), Ok(65536));
        // CPython yields 65536 here, which is no port.
        assert_eq!(
            python_range(65536, 65535, -1),
            Err("range(65536, 65535, -1): a descending range must start at 65535 or below".into())
        );
    }

    #[test]
    fn shown_is_pythons_repr_with_long_lists_cut() {
        let range = |start, end, step| Ports::Range { start, end, step };
        assert_eq!(shown(&range(8000, 8005, 1)), "range(8000, 8005)");
        assert_eq!(shown(&range(1080, 2080, 10)), "range(1080, 2080, 10)");
        assert_eq!(shown(&Ports::List(vec![])), "[]");
        assert_eq!(shown(&Ports::List(vec![80, 8080])), "[80, 8080]");
        assert_eq!(
            shown(&Ports::List((1..=11).collect())),
            "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...] (11 ports)"
        );
    }

    #[test]
    fn a_reservation_walk_wraps_around_and_says_where_to_go_on() {
        let ports = Ports::List(vec![2000, 80, 2001, 2002]);
        let (outcome, next) = search_from(Some(&ports), true, 3, |port| Ok::<_, ()>(port == 2001));
        assert_eq!(outcome.found, Found::Port(2001));
        assert_eq!(outcome.probed, [2002, 2000, 2001]);
        assert_eq!(next, Some(3));
    }
}
