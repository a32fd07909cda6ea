//! The search rules of `hbutils_port::search`, checked against the shared
//! oracle (`tests/search-oracle`) over a simulated host.
//!
//! Each case draws a range (any `u32` bounds, any `i32` step) or a list
//! (empty up to 65,536 entries), a strict flag, held ports and, now and then,
//! a port or an OS choice the host refuses; the real search and the oracle
//! must agree on the port, the error and its text, the warning, and every
//! port asked about, in order. The same oracle checks the real component
//! through wasmtime in `host-example/tests/all/search_property.rs`.
//!
//! Every property runs 10,000 cases unless `PROPTEST_CASES` says otherwise
//! (about 1 s in release, 17 s in debug, on two cores). Before changing the
//! search rules, run the long one, a million cases each (about two minutes in
//! release on two cores):
//!
//! ```sh
//! PROPTEST_CASES=1000000 cargo test --release -p hbutils-port --test search_property
//! ```
#![cfg(not(target_arch = "wasm32"))]

use hbutils_port::search::{Candidates, Error, NextFit, Probe, Take, get_free_port};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use search_oracle::{self as oracle, Found};

/// The oracle's view of the candidates.
fn as_oracle(ports: &Candidates) -> oracle::Ports {
    match *ports {
        Candidates::Range { start, end, step } => oracle::Ports::Range { start, end, step },
        Candidates::Explicit(ref list) => oracle::Ports::List(list.clone()),
    }
}

/// The oracle's answer as the search states it; `os_choice` is what the
/// simulated OS says when the oracle falls back to it.
fn as_result(
    found: Found<Error>,
    os_choice: impl FnOnce() -> Result<u16, Error>,
) -> Result<u16, Error> {
    match found {
        Found::Port(port) => Ok(port),
        Found::OsChoice => os_choice(),
        Found::NoFreePort(message) => Err(Error::NoFreePort(message)),
        Found::InvalidArgument(message) => Err(Error::InvalidArgument(message)),
        Found::Failed(error) => Err(error),
    }
}

/// What one search did, compared field by field.
#[derive(Debug)]
struct Seen {
    found: Result<u16, Error>,
    warning: Option<String>,
    probed: Vec<u16>,
}

/// What the oracle says the search must do.
fn expect(outcome: oracle::Outcome<Error>, os_choice: impl FnOnce() -> Result<u16, Error>) -> Seen {
    Seen {
        found: as_result(outcome.found, os_choice),
        warning: outcome.warning.map(str::to_owned),
        probed: outcome.probed,
    }
}

/// A set of ports, cheap to fill with all 65,536.
struct PortSet(Vec<u64>);

impl PortSet {
    fn new() -> Self {
        PortSet(vec![0; 1 << 10])
    }
    fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }
    /// Whether `port` was not in the set yet.
    fn insert(&mut self, port: u16) -> bool {
        let fresh = !self.contains(port);
        self.0[usize::from(port >> 6)] |= 1 << (port & 63);
        fresh
    }
}

/// The host both searches run against.
struct World {
    held: PortSet,
    denied: Option<u16>,
    os_denied: bool,
}

/// The port a looking search's OS fallback names.
const OS_PORT: u16 = 50_000;

impl World {
    /// A denied port errors whether or not it is held: the host refused to
    /// look, so nothing is known about it.
    fn is_free(&self, port: u16) -> Result<bool, Error> {
        if self.denied == Some(port) {
            return Err(Error::AccessDenied);
        }
        Ok(!self.held.contains(port))
    }
    fn os_choice(&self, port: u16) -> Result<u16, Error> {
        if self.os_denied {
            Err(Error::AccessDenied)
        } else {
            Ok(port)
        }
    }
}

/// The real search's view of the [`World`], recording what it is asked.
struct Looking<'w> {
    world: &'w World,
    probed: Vec<u16>,
}

impl Probe for Looking<'_> {
    type Hold = ();
    fn is_free(&mut self, port: u16) -> Result<bool, Error> {
        self.probed.push(port);
        self.world.is_free(port)
    }
    fn os_chosen(&mut self) -> Result<Option<(u16, ())>, Error> {
        Ok(Some((self.world.os_choice(OS_PORT)?, ())))
    }
}

/// A reserver over the [`World`]: it holds what it takes, so a port taken
/// once reads as held to every later search.
struct Holding<'w> {
    world: &'w World,
    taken: PortSet,
    os_taken: u16,
    probed: Vec<u16>,
}

impl Take for Holding<'_> {
    type Taken = u16;
    fn take(&mut self, port: u16) -> Result<Option<u16>, Error> {
        self.probed.push(port);
        Ok((self.world.is_free(port)? && self.taken.insert(port)).then_some(port))
    }
    fn port_of(&port: &u16) -> u16 {
        port
    }
    /// Numbers OS choices 1, 2, 3…: below the floor, so they can never be a
    /// port the search took itself, and "never twice" stays about the search.
    fn take_os_chosen(&mut self) -> Result<Option<u16>, Error> {
        let port = self.world.os_choice(self.os_taken + 1)?;
        self.os_taken = port;
        Ok(Some(port))
    }
}

/// Where a case searches, kept small so a failing case prints readably; a
/// long list is built from a seed.
#[derive(Debug, Clone)]
enum Where {
    Anywhere,
    Range { start: u32, end: u32, step: i32 },
    List(Vec<u16>),
    LongList { len: usize, seed: u64, shape: Shape },
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A handful of distinct ports, so nearly every entry is a duplicate.
    FewDistinct,
    /// Nearly all 0, the port that is never usable.
    MostlyZero,
    Anything,
    /// 0, 1, 2, … in order: with 65,536 entries, every port.
    Ascending,
}

/// splitmix64: a fixed, seedable stream, so a long list is reproduced from
/// the few numbers proptest prints.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Where {
    fn candidates(&self) -> Option<Candidates> {
        match *self {
            Where::Anywhere => None,
            Where::Range { start, end, step } => Some(Candidates::Range { start, end, step }),
            Where::List(ref list) => Some(Candidates::Explicit(list.clone())),
            Where::LongList { len, seed, shape } => {
                let mut state = seed;
                let list = (0..len)
                    .map(|i| {
                        let r = next_random(&mut state);
                        match shape {
                            Shape::FewDistinct => {
                                [0, 80, 1023, 1024, 1025, 8080, 65535][r as usize % 7]
                            }
                            Shape::MostlyZero if r.is_multiple_of(64) => (r >> 32) as u16,
                            Shape::MostlyZero => 0,
                            Shape::Anything => r as u16,
                            Shape::Ascending => i as u16,
                        }
                    })
                    .collect();
                Some(Candidates::Explicit(list))
            }
        }
    }
}

/// Which ports the host holds or refuses, stated against the usable
/// candidates so that a case can hold "the first three", "all" or "a random
/// half" of whatever it searches.
#[derive(Debug, Clone)]
struct Host {
    /// The first this many usable candidates are held (all, if more).
    leading: usize,
    /// Of the other usable candidates, each is held with odds `sprinkle`/256.
    sprinkle: u8,
    seed: u64,
    /// Held too, wherever they are.
    extra: Vec<u16>,
    /// The usable candidate at this index is refused.
    denied_at: Option<usize>,
    os_denied: bool,
}

impl Host {
    fn world(&self, ports: Option<&Candidates>) -> World {
        let usable = oracle::candidates(ports.map(as_oracle).as_ref())
            .map(|all| oracle::usable(&all))
            .unwrap_or_default();
        let mut held = PortSet::new();
        for &port in usable.iter().take(self.leading) {
            held.insert(port);
        }
        if self.sprinkle > 0 {
            for &port in &usable {
                let mut state = self.seed ^ u64::from(port);
                if (next_random(&mut state) & 0xff) < u64::from(self.sprinkle) {
                    held.insert(port);
                }
            }
        }
        for &port in &self.extra {
            held.insert(port);
        }
        World {
            held,
            denied: self.denied_at.and_then(|i| usable.get(i).copied()),
            os_denied: self.os_denied,
        }
    }
}

fn bound() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0,
            1,
            1023,
            1024,
            1025,
            65534,
            65535,
            65536,
            65537,
            i32::MAX as u32,
            u32::MAX - 1,
            u32::MAX,
        ]),
        3 => 1000u32..1100,
        3 => 0u32..=65536,
        1 => any::<u32>(),
    ]
}

fn step() -> impl Strategy<Value = i32> {
    prop_oneof![
        2 => Just(1),
        4 => -4i32..=4,
        2 => prop::sample::select(vec![
            i32::MIN,
            i32::MIN + 1,
            i32::MAX,
            i32::MAX - 1,
            1024,
            -1024,
            65535,
            -65535,
            65536,
            -65536,
        ]),
        2 => -70_000i32..=70_000,
        1 => any::<i32>(),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => prop::sample::select(vec![0, 1, 80, 1023, 1024, 1025, 8080, 65535]),
        2 => 1020u16..1040,
        1 => any::<u16>(),
    ]
}

fn place() -> impl Strategy<Value = Where> {
    let range =
        (bound(), bound(), step()).prop_map(|(start, end, step)| Where::Range { start, end, step });
    // Independent bounds make mostly long or empty ranges; these are short.
    let short_range = (bound(), -64i64..=64, step()).prop_map(|(start, span, step)| {
        let end = (i64::from(start) + span).clamp(0, i64::from(u32::MAX)) as u32;
        Where::Range { start, end, step }
    });
    let shape = prop::sample::select(vec![
        Shape::FewDistinct,
        Shape::MostlyZero,
        Shape::Anything,
        Shape::Ascending,
    ]);
    let long_list = (
        prop_oneof![0usize..=65_536, Just(65_536)],
        any::<u64>(),
        shape,
    )
        .prop_map(|(len, seed, shape)| Where::LongList { len, seed, shape });
    prop_oneof![
        1 => Just(Where::Anywhere),
        4 => short_range,
        3 => range,
        3 => prop::collection::vec(port(), 0..=24).prop_map(Where::List),
        1 => long_list,
    ]
}

fn host() -> impl Strategy<Value = Host> {
    (
        prop_oneof![4 => 0usize..4, 2 => 0usize..40, 1 => 0usize..=70_000, 1 => Just(usize::MAX)],
        prop_oneof![3 => Just(0u8), 1 => any::<u8>(), 1 => Just(255u8)],
        any::<u64>(),
        prop::collection::vec(port(), 0..4),
        prop_oneof![8 => Just(None), 1 => (0usize..40).prop_map(Some)],
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(leading, sprinkle, seed, extra, denied_at, os_denied)| Host {
                leading,
                sprinkle,
                seed,
                extra,
                denied_at,
                os_denied,
            },
        )
}

/// 10,000 cases, or `PROPTEST_CASES`; proptest's own default (256) is far
/// too few for the corners the generators aim at.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Compares two outcomes without printing 65,536 probed ports; `search`
/// names which of several searches in a case disagreed.
fn agree(search: usize, real: &Seen, expected: &Seen) -> Result<(), TestCaseError> {
    // prop_assert_eq! prints `left` (search.rs) and `right` (the oracle).
    prop_assert_eq!(
        &real.found,
        &expected.found,
        "search {}: the port or error",
        search
    );
    prop_assert_eq!(
        &real.warning,
        &expected.warning,
        "search {}: the warning",
        search
    );
    if real.probed != expected.probed {
        let at = real
            .probed
            .iter()
            .zip(&expected.probed)
            .position(|(a, b)| a != b)
            .unwrap_or(real.probed.len().min(expected.probed.len()));
        let around =
            |probed: &[u16]| probed[at.saturating_sub(2)..(at + 3).min(probed.len())].to_vec();
        return Err(TestCaseError::fail(format!(
            "search {search}: the probed ports differ at index {at}: \
             real probed {} ports, around there {:?}; the oracle {}, around there {:?}",
            real.probed.len(),
            around(&real.probed),
            expected.probed.len(),
            around(&expected.probed),
        )));
    }
    Ok(())
}

fn check_looking(place: &Where, host: &Host, strict: bool) -> Result<(), TestCaseError> {
    let ports = place.candidates();
    let world = host.world(ports.as_ref());

    let mut probe = Looking {
        world: &world,
        probed: Vec::new(),
    };
    let mut warning = None;
    let found = get_free_port(&mut probe, ports.as_ref(), strict, |w| {
        warning = Some(w.to_owned())
    });
    let real = Seen {
        found,
        warning,
        probed: probe.probed,
    };

    let expected = oracle::search(ports.as_ref().map(as_oracle).as_ref(), strict, |port| {
        world.is_free(port)
    });
    agree(0, &real, &expect(expected, || world.os_choice(OS_PORT)))
}

/// Several reservations in a row over the same candidates, each with its own
/// strict flag, the ports taken by earlier ones staying held, each one
/// continuing after the candidate the one before it took.
fn check_taking(place: &Where, host: &Host, stricts: &[bool]) -> Result<(), TestCaseError> {
    let ports = place.candidates();
    let oracle_ports = ports.as_ref().map(as_oracle);
    let world = host.world(ports.as_ref());
    let mut holder = Holding {
        world: &world,
        taken: PortSet::new(),
        os_taken: 0,
        probed: Vec::new(),
    };
    let mut taken = PortSet::new();
    let mut os_taken = 0;
    let mut next_fit = NextFit::default();
    let mut from = 0;

    for (search, &strict) in stricts.iter().enumerate() {
        holder.probed.clear();
        let mut warning = None;
        let found = next_fit
            .take(&mut holder, ports.as_ref(), 1, strict, |w| {
                warning = Some(w.to_owned())
            })
            .map(|mut taken| taken.remove(0));
        let real = Seen {
            found,
            warning,
            probed: holder.probed.clone(),
        };

        let (expected, next) = oracle::search_from(oracle_ports.as_ref(), strict, from, |port| {
            Ok(world.is_free(port)? && !taken.contains(port))
        });
        let expected = expect(expected, || world.os_choice(os_taken + 1));
        agree(search, &real, &expected)?;
        if let Some(next) = next {
            from = next;
        }
        match real.found {
            // Only the fake OS hands out ports below the floor.
            Ok(port) if port < 1024 => os_taken = port,
            Ok(port) => prop_assert!(taken.insert(port), "search {} took {} twice", search, port),
            Err(_) => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn get_free_port_is_the_first_free_port_from_1024_up_of_python_range_or_list(
        place in place(),
        host in host(),
        strict in any::<bool>(),
    ) {
        check_looking(&place, &host, strict)?;
    }

    #[test]
    fn reserving_repeatedly_continues_after_the_last_port_taken_and_never_takes_a_port_twice(
        place in place(),
        host in host(),
        stricts in prop::collection::vec(any::<bool>(), 1..=6),
    ) {
        check_taking(&place, &host, &stricts)?;
    }
}
