//! One store's sandbox: the bounds a guest lives within (memory, tables,
//! instances, live resources, time), the store that enforces them, and the
//! engine's epoch that call deadlines are counted in.
//!
//! A plugin host runs components it did not write, so every bound is per
//! store and ends the guest with an error rather than taking the host.

use crate::NetworkPolicy;
use crate::engine_config::{Pool, engine_config};
use std::thread;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Result, Store, UpdateDeadline, bail};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How often [`start_epoch_ticker`] advances an engine's epoch; deadlines and
/// the async yield are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What wasmtime keeps per table element: one pointer. Tables count toward
/// the store's memory bound at this price.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Bounds on what one store, and one host, may use.
///
/// The defaults fit the port component many times over and stop a hostile
/// one early. Measured, the component needs 320 KiB of memory (searching a
/// 65,536-entry list), 3 core instances, 1 memory, 2 tables with 93 elements
/// in all, and 2 live resources plus one per reservation it holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Every linear memory and table of a store together, in bytes (a table
    /// element counts as a pointer's size).
    pub memory_bytes: usize,
    /// Table elements of a store, all tables together.
    pub table_elements: usize,
    /// Core instances per store (a component is several).
    pub instances: usize,
    /// Linear memories per store.
    pub memories: usize,
    /// Tables per store.
    pub tables: usize,
    /// Live WASI resources per store: sockets, streams, pollables. A socket
    /// holds one descriptor and each reservation one socket, so this bounds
    /// the store's descriptors.
    pub resources: usize,
    /// Sessions alive at once per [`PortHost`](crate::PortHost). With
    /// `resources`, it bounds the descriptors every tenant together can hold:
    /// `sessions × resources`.
    pub sessions: usize,
    /// Wall time one call may run. The async API counts host calls too
    /// (a guest blocked on a socket); the sync API only guest code.
    pub call_timeout: Duration,
    /// `None`: each store maps its own memory when it is made. `Some(n)`: up
    /// to `n` stores live at once, in slots the engine maps once: cheaper
    /// per store, for hosts that make a store per request.
    pub pooled_instances: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            table_elements: 10_000,
            instances: 20,
            memories: 4,
            tables: 20,
            resources: 1_000,
            sessions: 64,
            call_timeout: Duration::from_secs(30),
            pooled_instances: None,
        }
    }
}

impl Limits {
    /// The descriptors all sessions of one host may hold at once.
    pub fn host_descriptor_bound(&self) -> usize {
        self.sessions.saturating_mul(self.resources)
    }
}

/// Where a session's guest writes its stderr (the strict-mode warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// The host process's own stderr.
    Inherit,
    /// A buffer, read back with [`Session::captured_stderr`](crate::Session::captured_stderr).
    Capture,
}

/// The data every store carries: WASI state and the store's bounds.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StoreLimiter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    /// The store's resource table (sockets a reservation handed over live here).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Sums what a store's memories and tables take and refuses what would pass
/// [`Limits`]. wasmtime's own `StoreLimits` bounds each memory on its own, so
/// forty instances could take forty times the "limit".
struct StoreLimiter {
    limits: Limits,
    /// Bytes of every memory plus every table's elements at their price.
    bytes: usize,
    elements: usize,
}

impl StoreLimiter {
    fn charge(&mut self, more_bytes: usize, what: &str) -> Result<bool> {
        let total = self.bytes.saturating_add(more_bytes);
        if total > self.limits.memory_bytes {
            bail!(
                "the component asked for {what} beyond its store's {} MiB memory limit",
                self.limits.memory_bytes >> 20
            );
        }
        self.bytes = total;
        Ok(true)
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        self.charge(desired.saturating_sub(current), "more linear memory")
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let more = desired.saturating_sub(current);
        let elements = self.elements.saturating_add(more);
        if elements > self.limits.table_elements {
            bail!(
                "the component asked for more table elements than its store's {} allow",
                self.limits.table_elements
            );
        }
        let allowed = self.charge(more.saturating_mul(TABLE_ELEMENT_BYTES), "a larger table")?;
        self.elements = elements;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        self.limits.tables
    }

    fn memories(&self) -> usize {
        self.limits.memories
    }
}

/// An engine with the settings this crate needs (epoch interruption; the
/// pooling allocator when `limits` ask for it), whose epoch advances every
/// [`EPOCH_TICK`] until it is dropped.
pub fn engine(limits: &Limits) -> Result<Engine> {
    let engine = Engine::new(&config(limits))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// An engine like [`engine`]'s that loads precompiled code and cannot
/// compile: it skips making Cranelift, most of an engine's making. Its epoch
/// is not ticked yet; the caller starts the ticker once it keeps the engine.
pub(crate) fn loading_engine(limits: &Limits) -> Result<Engine> {
    let mut config = config(limits);
    // What the build precompiled with (`engine_config`) stays as it was: the
    // compiler is not one of the settings a precompiled artifact must match.
    config.enable_compiler(false);
    Engine::new(&config)
}

fn config(limits: &Limits) -> wasmtime::Config {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let pool = limits.pooled_instances.map(|stores| Pool {
        stores,
        memory_bytes: limits.memory_bytes,
        instances: count(limits.instances),
        memories: count(limits.memories),
        tables: count(limits.tables),
        table_elements: limits.table_elements,
    });
    engine_config(pool)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own,
/// until the engine is dropped. A host that brings its own engine and does
/// not tick it already calls this once.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            thread::sleep(EPOCH_TICK);
        }
    });
}

/// How a store's calls are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Sync calls: the guest traps when its deadline passes (guest code only).
    Sync,
    /// Async calls: the guest yields at every tick, so that the caller's
    /// timeout (and other tasks) get their turn even while it spins.
    Async,
}

/// A store whose guest gets `network` and nothing else of the host: no files,
/// no environment, no arguments, no stdin or stdout; bounded by `limits`.
/// Returns the stderr buffer when `stderr` is [`Stderr::Capture`].
pub fn sandboxed_store(
    engine: &Engine,
    network: NetworkPolicy,
    stderr: Stderr,
    limits: Limits,
    calls: Calls,
) -> (Store<State>, Option<MemoryOutputPipe>) {
    let mut wasi = WasiCtxBuilder::new();
    network.apply(&mut wasi);
    let captured = match stderr {
        Stderr::Inherit => {
            wasi.inherit_stderr();
            None
        }
        Stderr::Capture => {
            let pipe = MemoryOutputPipe::new(64 << 10);
            wasi.stderr(pipe.clone());
            Some(pipe)
        }
    };
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.resources);
    let state = State {
        wasi: wasi.build(),
        table,
        limiter: StoreLimiter {
            limits,
            bytes: 0,
            elements: 0,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    match calls {
        Calls::Sync => store.set_epoch_deadline(deadline_ticks(limits.call_timeout)),
        Calls::Async => {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        }
    }
    (store, captured)
}

/// Runs `call` within `limits.call_timeout`, a host call included: its
/// result with any bound it ran into named (see [`explain`]), or, past the
/// deadline, `Err` with the line that says so.
pub(crate) async fn within_deadline<T>(
    limits: &Limits,
    call: impl Future<Output = Result<T>>,
) -> std::result::Result<Result<T>, String> {
    match tokio::time::timeout(limits.call_timeout, call).await {
        Ok(result) => Ok(result.map_err(|error| explain(error, limits))),
        Err(_) => Err(deadline_message(limits.call_timeout)),
    }
}

/// `timeout` in epoch ticks, at least one.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// The line a call that ran past `timeout` ends with.
pub(crate) fn deadline_message(timeout: Duration) -> String {
    format!(
        "the component ran past its {} s deadline and was stopped",
        timeout.as_secs_f64()
    )
}

/// Names the bound a call ran into, when it ran into one: the guest's own
/// trap says only what wasmtime saw.
pub(crate) fn explain(error: wasmtime::Error, limits: &Limits) -> wasmtime::Error {
    if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return wasmtime::format_err!("{}", deadline_message(limits.call_timeout));
    }
    if error.chain().any(|cause| {
        cause
            .downcast_ref::<wasmtime::component::ResourceTableError>()
            .is_some()
    }) {
        return wasmtime::format_err!(
            "the component went over its quota of {} live sockets, streams and pollables \
             and was stopped",
            limits.resources
        );
    }
    error
}
