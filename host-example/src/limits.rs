//! The bounds, one type per level where they apply: [`StoreBounds`] for one
//! store (what a single guest may use), [`Limits`] for a [`PortHost`]
//! (sessions at once, each call's deadline, and the store bounds each session
//! gets), [`Pooling`] for an engine (slots mapped once for many stores).
//!
//! [`PortHost`]: crate::PortHost

use std::time::Duration;
use wasmtime::{Result, bail};

/// What one store's guest may use. A plugin host runs components it did not
/// write, so each bound ends the guest with an error rather than taking the
/// host.
///
/// The defaults fit the port component many times over and stop a hostile
/// one early. Measured, the component needs 320 KiB of memory (searching a
/// 65,536-entry list), 3 core instances, 1 memory, 2 tables with 93 elements
/// in all, and 2 live resources plus one per reservation it holds.
///
/// New bounds may be added, so the type is made from [`StoreBounds::default`]
/// and its `with_` setters (or by assigning fields):
///
/// ```
/// use port_host::StoreBounds;
///
/// let bounds = StoreBounds::default().with_resources(64).with_memory_bytes(1 << 20);
/// assert_eq!(bounds.resources, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreBounds {
    /// Every linear memory and table of the store together, in bytes (a
    /// table element counts as a pointer's size).
    pub memory_bytes: usize,
    /// Table elements, all tables together.
    pub table_elements: usize,
    /// Core instances (a component is several).
    pub instances: usize,
    /// Linear memories.
    pub memories: usize,
    /// Tables.
    pub tables: usize,
    /// Live WASI resources: sockets, streams, pollables. A socket holds one
    /// descriptor and each reservation one socket, so this bounds the
    /// store's descriptors.
    pub resources: usize,
}

impl Default for StoreBounds {
    fn default() -> Self {
        StoreBounds {
            memory_bytes: 64 << 20,
            table_elements: 10_000,
            instances: 20,
            memories: 4,
            tables: 20,
            resources: 1_000,
        }
    }
}

/// What a [`PortHost`](crate::PortHost) allows: its sessions together, each
/// call, and each session's store. Made like [`StoreBounds`]:
///
/// ```
/// use port_host::{Limits, StoreBounds};
/// use std::time::Duration;
///
/// let limits = Limits::default()
///     .with_sessions(10_000)
///     .with_call_timeout(Duration::from_secs(2))
///     .with_store(StoreBounds::default().with_resources(64));
/// assert_eq!(limits.host_descriptor_bound(), 640_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Sessions alive at once, per host (two hosts on one engine count
    /// apart). With `store.resources` it bounds the descriptors every tenant
    /// of the host can hold together: [`Limits::host_descriptor_bound`].
    pub sessions: usize,
    /// Wall time one call may run, guest code and host calls alike (a guest
    /// blocked in `accept` included), for sync and async sessions. It must
    /// not be zero; a duration too large to add to the clock means "no
    /// deadline in practice" rather than wrapping to a short one.
    pub call_timeout: Duration,
    /// What each session's store may use.
    pub store: StoreBounds,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions: 64,
            call_timeout: Duration::from_secs(30),
            store: StoreBounds::default(),
        }
    }
}

/// `with_` setters: each returns the value with one field changed.
macro_rules! setters {
    ($type:ident { $($field:ident: $ty:ty => $setter:ident),* $(,)? }) => {
        impl $type {
            $(
                #[doc = concat!("With `", stringify!($field), "` set to `value`.")]
                #[must_use]
                pub const fn $setter(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters!(StoreBounds {
    memory_bytes: usize => with_memory_bytes,
    table_elements: usize => with_table_elements,
    instances: usize => with_instances,
    memories: usize => with_memories,
    tables: usize => with_tables,
    resources: usize => with_resources,
});

setters!(Limits {
    sessions: usize => with_sessions,
    call_timeout: Duration => with_call_timeout,
    store: StoreBounds => with_store,
});

impl Limits {
    /// The descriptors all sessions of one host may hold at once.
    pub fn host_descriptor_bound(&self) -> usize {
        self.sessions.saturating_mul(self.store.resources)
    }

    /// Refuses bounds under which no call could run.
    pub(crate) fn check(&self) -> Result<()> {
        if self.call_timeout.is_zero() {
            bail!("a call timeout of zero leaves no time for any call");
        }
        if self.sessions == 0 {
            bail!("a host limited to zero sessions can run none");
        }
        Ok(())
    }
}

/// The pooling allocator's slots, an engine-level choice: `stores` stores at
/// once, each slot sized by `per_store`, mapped once when the engine is made
/// instead of an mmap/munmap pair per store. For hosts that make a store per
/// request. Every product of these counts is checked when the engine is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pooling {
    /// Stores (sessions) alive at once on the engine.
    pub stores: u32,
    /// What each slot holds; keep it equal to the hosts' [`Limits::store`],
    /// so that a slot never promises more than the store's limiter allows.
    pub per_store: StoreBounds,
}

impl Pooling {
    /// `stores` slots, each sized by `per_store`: give it the hosts'
    /// [`Limits::store`].
    pub const fn new(stores: u32, per_store: StoreBounds) -> Self {
        Pooling { stores, per_store }
    }
}
