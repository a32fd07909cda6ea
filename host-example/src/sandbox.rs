//! One store's sandbox: the store that enforces [`StoreBounds`], the engine
//! it lives on, and the epoch that lets a call's deadline take effect.

use crate::NetworkPolicy;
use crate::engine_config::{Pool, engine_config};
use crate::error::{DeadlineExceeded, QuotaExceeded};
use crate::limits::{Pooling, StoreBounds};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;
use wasmtime::component::{ResourceTable, ResourceTableError};
use wasmtime::{Engine, EngineWeak, ResourceLimiter, Result, Store, UpdateDeadline, bail};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How often [`start_epoch_ticker`] advances an engine's epoch: a guest
/// spinning in its own code yields to its caller's deadline this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What wasmtime keeps per table element: one pointer. Tables count toward
/// the store's memory bound at this price.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

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
/// [`StoreBounds`]. wasmtime's own `StoreLimits` bounds each memory on its
/// own, so forty instances could take forty times the "limit".
struct StoreLimiter {
    bounds: StoreBounds,
    /// Bytes of every memory plus every table's elements at their price.
    bytes: usize,
    elements: usize,
}

impl StoreLimiter {
    fn charge(&mut self, more_bytes: usize, what: &str) -> Result<bool> {
        let total = self.bytes.saturating_add(more_bytes);
        if total > self.bounds.memory_bytes {
            bail!(
                "the component asked for {what} beyond its store's {} MiB memory limit",
                self.bounds.memory_bytes >> 20
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
        if elements > self.bounds.table_elements {
            bail!(
                "the component asked for more table elements than its store's {} allow",
                self.bounds.table_elements
            );
        }
        let allowed = self.charge(more.saturating_mul(TABLE_ELEMENT_BYTES), "a larger table")?;
        self.elements = elements;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.bounds.instances
    }

    fn tables(&self) -> usize {
        self.bounds.tables
    }

    fn memories(&self) -> usize {
        self.bounds.memories
    }
}

/// An engine with the settings this crate needs (epoch interruption; the
/// pooling allocator when `pooling` is given), whose epoch advances every
/// [`EPOCH_TICK`] until it is dropped.
pub fn engine(pooling: Option<&Pooling>) -> Result<Engine> {
    let engine = Engine::new(&config(pooling)?)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// An engine like [`engine`]'s that loads precompiled code and cannot
/// compile: it skips making Cranelift, most of an engine's making. Its epoch
/// is not ticked yet; the caller starts the ticker once it keeps the engine.
pub(crate) fn loading_engine(pooling: Option<&Pooling>) -> Result<Engine> {
    let mut config = config(pooling)?;
    // What the build precompiled with (`engine_config`) stays as it was: the
    // compiler is not one of the settings a precompiled artifact must match.
    config.enable_compiler(false);
    Engine::new(&config)
}

fn config(pooling: Option<&Pooling>) -> Result<wasmtime::Config> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let pool = pooling.map(|pooling| {
        let bounds = &pooling.per_store;
        Pool {
            stores: pooling.stores,
            memory_bytes: bounds.memory_bytes,
            instances: count(bounds.instances),
            memories: count(bounds.memories),
            tables: count(bounds.tables),
            table_elements: bounds.table_elements,
        }
    });
    engine_config(pool)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own,
/// until the engine is dropped. An embedder that brings its own engine calls
/// this (or ticks the epoch itself). Calling it again for the same engine
/// starts nothing; it returns whether this call started the ticker.
pub fn start_epoch_ticker(engine: &Engine) -> bool {
    static TICKED: Mutex<Vec<EngineWeak>> = Mutex::new(Vec::new());
    let mut ticked = TICKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Engines that are gone have stopped their tickers; forget them.
    let mut ticking = false;
    ticked.retain(|weak| match weak.upgrade() {
        Some(other) => {
            ticking |= Engine::same(&other, engine);
            true
        }
        None => false,
    });
    if ticking {
        return false;
    }
    ticked.push(engine.weak());
    let weak = engine.weak();
    thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            thread::sleep(EPOCH_TICK);
        }
    });
    true
}

/// A store whose guest gets `network` and nothing else of the host: no files,
/// no environment, no arguments, no stdin or stdout; bounded by `bounds`.
/// Returns the stderr buffer when `stderr` is [`Stderr::Capture`].
///
/// The guest yields at every epoch tick, so that a caller's deadline (and,
/// in tokio, other tasks) get their turn even while it spins: calls into it
/// are made with `call_async`, under a timeout.
pub fn sandboxed_store(
    engine: &Engine,
    network: NetworkPolicy,
    stderr: Stderr,
    bounds: &StoreBounds,
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
    table.set_max_capacity(bounds.resources);
    let state = State {
        wasi: wasi.build(),
        table,
        limiter: StoreLimiter {
            bounds: *bounds,
            bytes: 0,
            elements: 0,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    (store, captured)
}

/// Runs `call` within `timeout`, a host call included; `call` is dropped
/// there, mid-call, when it runs past.
pub(crate) async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = T>,
) -> std::result::Result<T, DeadlineExceeded> {
    // tokio turns a deadline past the clock's end into "never", not a wrap.
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| DeadlineExceeded { timeout })
}

/// Names the bound a failed call ran into, as context over the error itself:
/// the trap or the host's error stays the source, for `downcast_ref`.
pub(crate) fn explain(error: wasmtime::Error, bounds: &StoreBounds) -> wasmtime::Error {
    let table_error = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ResourceTableError>())
        .map(|table| (matches!(table, ResourceTableError::Full), table.to_string()));
    match table_error {
        Some((true, _)) => error.context(QuotaExceeded {
            resources: bounds.resources,
        }),
        Some((false, what)) => error.context(format!(
            "the component used a handle the host does not hold for it ({what}) and was stopped"
        )),
        None if error.downcast_ref::<wasmtime::Trap>().is_some() => {
            error.context("the component trapped and was stopped")
        }
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_table_is_reported_as_a_quota_and_the_source_stays() {
        let bounds = StoreBounds::default();
        let full = explain(wasmtime::Error::new(ResourceTableError::Full), &bounds);
        assert!(full.to_string().contains("quota of 1000"), "{full}");
        assert_eq!(
            full.downcast_ref::<QuotaExceeded>()
                .map(|quota| quota.resources),
            Some(1000)
        );
        assert!(full.downcast_ref::<ResourceTableError>().is_some());
        for other in [
            ResourceTableError::NotPresent,
            ResourceTableError::WrongType,
            ResourceTableError::HasChildren,
        ] {
            let what = other.to_string();
            let error = explain(wasmtime::Error::new(other), &bounds);
            let message = error.to_string();
            assert!(!message.contains("quota"), "{message}");
            assert!(message.contains(&what), "{message}");
            assert!(error.downcast_ref::<ResourceTableError>().is_some());
        }
    }

    #[test]
    fn a_trap_keeps_its_type_under_the_explanation() {
        let error = explain(
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached),
            &StoreBounds::default(),
        );
        assert_eq!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::UnreachableCodeReached)
        );
        assert!(error.to_string().contains("trapped"), "{error}");
    }

    #[test]
    fn a_second_ticker_for_one_engine_is_not_started() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        assert!(start_epoch_ticker(&engine));
        assert!(!start_epoch_ticker(&engine));
        assert!(!start_epoch_ticker(&engine.clone()));
        let other = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        assert!(start_epoch_ticker(&other));
    }
}
