//! The search rules through the real component: `get-free-port` run by
//! wasmtime against ports this test really holds, checked against the oracle
//! in `tests/search-oracle`, which shares nothing with `src/search.rs`. The
//! root crate's `tests/search_property.rs` checks the same rules against the
//! same oracle without sockets, down to every port probed.
//!
//! A port outside a block that `free_block` verified may be held by anyone on
//! the machine, so the oracle could not know its state. Every case therefore
//! draws candidates whose usable ports (>= 1024) all lie in the block, plus
//! ports below 1024, which the search skips without a socket call, plus
//! ranges the component must refuse without looking. A random subset of the
//! block is held by real sockets of every kind that holds a port. The oracle
//! then knows the answer exactly, except for the OS's pick when nothing
//! usable is free and strict is off: that port must come from the OS's
//! ephemeral range (so it is none of the held block) and be bindable here.
//!
//! 500 cases unless `PROPTEST_CASES` says otherwise (about a third of a second in
//! release). `SEARCH_PROPERTY_COMPONENT=path.wasm` runs them against another
//! build of the component instead of the embedded one: that is how a
//! deliberately broken build is shown to fail here.

use crate::common::{Holder, ephemeral_ports, free_block, hold, ipv6_loopback, natively_free};
use port_host::{
    Candidates, ErrorCode, Limits, NetworkPolicy, PortHost, PortRange, Session, Stderr,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use search_oracle::{self as oracle, Found};
use std::convert::Infallible;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The block every case searches; at most 64 so that a `u64` names a subset.
const LEN: u16 = 48;

/// The oracle's view of the candidates.
fn as_oracle(ports: &Candidates) -> oracle::Ports {
    match ports {
        &Candidates::Range(PortRange { start, end, step }) => {
            oracle::Ports::Range { start, end, step }
        }
        Candidates::Explicit(list) => oracle::Ports::List(list.clone()),
    }
}

/// What `get-free-port` must answer, given which ports are held, and
/// whether it writes the strict-mode warning. `None` is the OS's choice.
fn oracle_answer(
    ports: Option<&Candidates>,
    strict: bool,
    held: impl Fn(u16) -> bool,
) -> (Option<Result<u16, ErrorCode>>, bool) {
    let outcome = oracle::search(ports.map(as_oracle).as_ref(), strict, |port| {
        Ok::<_, Infallible>(!held(port))
    });
    let answer = match outcome.found {
        Found::Port(port) => Some(Ok(port)),
        Found::OsChoice => None,
        Found::NoFreePort(message) => Some(Err(ErrorCode::NoFreePort(message))),
        Found::InvalidArgument(message) => Some(Err(ErrorCode::InvalidArgument(message))),
        Found::Failed(never) => match never {},
    };
    (answer, outcome.warning.is_some())
}

/// Where a range starts, stated against the block the case runs on.
#[derive(Debug, Clone, Copy)]
enum Start {
    InBlock(u16),
    Low(u16),
    /// 65536: a range that starts there is empty or refused.
    Limit,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    By(i32),
    /// Straight from the start to this port of the block.
    ToBlock(u16),
    /// Straight from the start to this port below 1024.
    ToLow(u16),
}

/// Where in the ends the range may have, the lowest to the highest, it ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Lowest,
    Highest,
    /// Near the start, clamped to the ends it may have.
    NearStart(i8),
    /// This fraction (of 65535) of the way from lowest to highest.
    Between(u16),
}

/// The candidates of one case, relative to the block.
#[derive(Debug, Clone)]
enum Where {
    Absent,
    Range(Start, Step, End),
    /// Refused before any port is looked at.
    Invalid(u32, u32, i32),
    /// `true`: a port of the block (by offset); `false`: a port below 1024.
    List(Vec<(bool, u16)>),
    /// A long list of a few ports, `len` entries, cut in the error message.
    LongList(Vec<(bool, u16)>, usize),
}

/// A port below 1024: the search must skip it without asking the host.
fn low_port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(1), Just(80), Just(1023), 0u16..1024]
}

fn entry() -> impl Strategy<Value = (bool, u16)> {
    prop_oneof![
        3 => (0..LEN).prop_map(|offset| (true, offset)),
        // Few distinct offsets, so that duplicates are common.
        2 => (0..4u16).prop_map(|offset| (true, offset)),
        2 => low_port().prop_map(|port| (false, port)),
    ]
}

fn place() -> impl Strategy<Value = Where> {
    let start = prop_oneof![
        4 => (0..LEN).prop_map(Start::InBlock),
        2 => low_port().prop_map(Start::Low),
        1 => Just(Start::Limit),
    ];
    let step = prop_oneof![
        3 => prop::sample::select(vec![1, 2, 3, 7, -1, -2, -5, 47, -47, 65_535, -65_535, i32::MAX, i32::MIN, i32::MIN + 1]).prop_map(Step::By),
        2 => (-60i32..=60).prop_filter("a zero step is refused", |&s| s != 0).prop_map(Step::By),
        1 => (0..LEN).prop_map(Step::ToBlock),
        1 => low_port().prop_map(Step::ToLow),
    ];
    let end = prop_oneof![
        1 => Just(End::Lowest),
        1 => Just(End::Highest),
        3 => any::<i8>().prop_map(End::NearStart),
        2 => any::<u16>().prop_map(End::Between),
    ];
    let invalid_bound = prop::sample::select(vec![
        65_537,
        70_000,
        i32::MAX as u32,
        u32::MAX - 1,
        u32::MAX,
    ]);
    let invalid = prop_oneof![
        (0u32..=65_536, 0u32..=65_536).prop_map(|(start, end)| Where::Invalid(start, end, 0)),
        (
            invalid_bound.clone(),
            0u32..=65_536,
            any::<i32>().prop_filter("nonzero", |&s| s != 0)
        )
            .prop_map(|(start, end, step)| Where::Invalid(start, end, step)),
        (
            0u32..=65_536,
            invalid_bound,
            any::<i32>().prop_filter("nonzero", |&s| s != 0)
        )
            .prop_map(|(start, end, step)| Where::Invalid(start, end, step)),
        // Non-empty and descending from 65536: its first port does not exist.
        (0u32..65_536, i32::MIN..0).prop_map(|(end, step)| Where::Invalid(65_536, end, step)),
    ];
    let long = (prop::collection::vec(entry(), 1..4), 11usize..=4096)
        .prop_map(|(entries, len)| Where::LongList(entries, len));
    prop_oneof![
        1 => Just(Where::Absent),
        8 => (start, step, end).prop_map(|(start, step, end)| Where::Range(start, step, end)),
        2 => invalid,
        6 => prop::collection::vec(entry(), 0..=24).prop_map(Where::List),
        1 => long,
    ]
}

impl Where {
    /// The candidates on the block at `base`: every usable port they yield
    /// lies in `base..base + LEN`.
    fn candidates(&self, base: u16) -> Option<Candidates> {
        let port = |&(in_block, value): &(bool, u16)| if in_block { base + value } else { value };
        match self {
            Where::Absent => None,
            &Where::Invalid(start, end, step) => {
                Some(Candidates::Range(PortRange { start, end, step }))
            }
            Where::List(entries) => Some(Candidates::Explicit(entries.iter().map(port).collect())),
            Where::LongList(entries, len) => Some(Candidates::Explicit(
                entries.iter().map(port).cycle().take(*len).collect(),
            )),
            &Where::Range(start, step, end) => {
                Some(Candidates::Range(range_in_block(base, start, step, end)))
            }
        }
    }
}

/// A valid range from `start` by `step` whose end keeps every usable port it
/// yields inside the block: the end stops short of the first port the walk
/// would reach outside it.
fn range_in_block(base: u16, start: Start, step: Step, end: End) -> PortRange {
    let start = match start {
        Start::InBlock(offset) => i64::from(base + offset),
        Start::Low(port) => i64::from(port),
        Start::Limit => 65_536,
    };
    let step = match step {
        Step::By(step) => i64::from(step),
        Step::ToBlock(offset) => i64::from(base + offset) - start,
        Step::ToLow(port) => i64::from(port) - start,
    };
    // A step that would be zero, or beyond `s32`, is made the smallest ascent.
    let step = if step == 0 || i32::try_from(step).is_err() {
        1
    } else {
        step
    };
    let in_block = |port: i64| (i64::from(base)..i64::from(base + LEN)).contains(&port);
    let forbidden = |port: i64| (1024..=65_535).contains(&port) && !in_block(port);
    // The first port of the unbounded walk that must not be reached.
    let mut value = start;
    let mut first_forbidden = None;
    while (0..=65_536).contains(&value) {
        if forbidden(value) {
            first_forbidden = Some(value);
            break;
        }
        value += step;
    }
    // Ascending: the end may lie anywhere up to that port (an end at or
    // below the start makes the range empty). Descending: anywhere from it.
    let (lowest, highest) = match (step > 0, first_forbidden) {
        (true, Some(port)) => (0, port),
        (false, Some(port)) => (port, 65_536),
        (_, None) => (0, 65_536),
    };
    // A descending range from 65536 that yields anything is refused; keep it
    // empty here, the refusal has cases of its own.
    let lowest = if start == 65_536 && step < 0 {
        65_536
    } else {
        lowest
    };
    let end = match end {
        End::Lowest => lowest,
        End::Highest => highest,
        End::NearStart(delta) => (start + i64::from(delta)).clamp(lowest, highest),
        End::Between(fraction) => lowest + (highest - lowest) * i64::from(fraction) / 65_535,
    };
    PortRange {
        start: start as u32,
        end: end as u32,
        step: step as i32,
    }
}

/// A session of the component under test.
fn session() -> Session {
    static OTHER: OnceLock<Option<PortHost>> = OnceLock::new();
    let other = OTHER.get_or_init(|| {
        let path = std::env::var_os("SEARCH_PROPERTY_COMPONENT")?;
        let limits = Limits::default().with_sessions(10_000);
        Some(PortHost::from_file(path.as_ref(), limits).expect("the named component loads"))
    });
    match other {
        Some(host) => host
            .session(NetworkPolicy::loopback(), Stderr::Capture)
            .expect("a session starts"),
        None => crate::common::session(),
    }
}

/// The ways a port can be held on this machine.
fn holders() -> Vec<fn(u16) -> socket2::Socket> {
    let mut kinds: Vec<fn(u16) -> socket2::Socket> = vec![
        |port| hold(Holder::Ipv4Loopback, port),
        |port| hold(Holder::Ipv4Wildcard, port),
        |port| hold(Holder::BoundNotListening, port),
    ];
    if ipv6_loopback() {
        kinds.push(|port| hold(Holder::Ipv6LoopbackOnly, port));
        kinds.push(|port| hold(Holder::Ipv6Wildcard, port));
    }
    kinds
}

/// How many cases expected: a free port, the strict refusal, an invalid
/// range, the OS's choice, and the OS's choice after the warning.
static SEEN: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(500);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn check(
    base: u16,
    place: &Where,
    held: u64,
    kinds: u64,
    strict: bool,
) -> Result<(), TestCaseError> {
    let is_held =
        |port: u16| (base..base + LEN).contains(&port) && held & (1 << (port - base)) != 0;
    let holders = holders();
    let _sockets: Vec<socket2::Socket> = (base..base + LEN)
        .filter(|&port| is_held(port))
        .map(|port| {
            let kind = (kinds >> ((port - base) % 21 * 3)) as usize % holders.len();
            holders[kind](port)
        })
        .collect();

    let ports = place.candidates(base);
    let (expected, warned) = oracle_answer(ports.as_ref(), strict, is_held);
    let mut session = session();
    let answer = session
        .get_free_port(ports.as_ref(), strict)
        .map_err(|trap| TestCaseError::fail(format!("the call trapped: {trap:?}")))?;
    SEEN[match (&expected, warned) {
        (Some(Ok(_)), _) => 0,
        (Some(Err(ErrorCode::NoFreePort(_))), _) => 1,
        (Some(Err(_)), _) => 2,
        (None, false) => 3,
        (None, true) => 4,
    }]
    .fetch_add(1, Ordering::Relaxed);
    match expected {
        Some(expected) => prop_assert_eq!(answer, expected, "{:?}", ports),
        None => {
            let port = answer.map_err(|error| {
                TestCaseError::fail(format!("no OS choice but {error:?} for {ports:?}"))
            })?;
            // free_block's ports lie outside the ephemeral range, so a port
            // from it is none the test holds.
            prop_assert!(
                ephemeral_ports().contains(&port),
                "{} is no OS choice",
                port
            );
            // Closed by the component, so bindable now unless another
            // process took it in the meantime, which the ephemeral range's
            // size makes a one-in-tens-of-thousands event.
            prop_assert!(natively_free(port), "the OS's choice {} is held", port);
        }
    }
    let stderr = session.captured_stderr().unwrap_or_default();
    let warning = if warned { oracle::WARNING } else { "" };
    prop_assert_eq!(stderr, warning, "{:?}", ports);
    Ok(())
}

fn held_subset() -> impl Strategy<Value = u64> {
    let all = (1u64 << LEN) - 1;
    prop_oneof![
        1 => Just(0),
        3 => Just(all),
        2 => any::<u64>(),
        // Three in four held.
        2 => (any::<u64>(), any::<u64>()).prop_map(|(a, b)| a | b),
        // The first n held.
        2 => (0..=LEN).prop_map(|n| (1u64 << n) - 1),
    ]
    .prop_map(move |held| held & all)
}

#[test]
fn the_component_answers_what_the_oracle_says_over_ports_really_held() {
    let base = free_block(LEN);
    proptest!(config(), |(place in place(), held in held_subset(), kinds in any::<u64>(), strict in any::<bool>())| {
        check(base, &place, held, kinds, strict)?;
    });
    // The generators are meant to reach every outcome; a change that starves
    // one would leave its rule untested while the test still passed.
    let seen = SEEN.each_ref().map(|count| count.load(Ordering::Relaxed));
    if config().cases >= 100 {
        assert!(
            seen.iter().all(|&count| count > 0),
            "outcomes reached: {seen:?}"
        );
    }
}
