//! One guest's store: the WASI state it sees, under a [`NetworkPolicy`], and
//! the bounds it cannot pass.

use crate::NetworkPolicy;
use crate::capture::StderrCapture;
use crate::limiter::StoreLimiter;
use crate::limits::StoreBounds;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where a session's guest writes its stderr (the strict-mode warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// The host process's own stderr.
    Inherit,
    /// A buffer, read back with [`Session::captured_stderr`](crate::Session::captured_stderr)
    /// or drained with [`Session::take_captured_stderr`](crate::Session::take_captured_stderr).
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
) -> (Store<State>, Option<StderrCapture>) {
    let mut wasi = WasiCtxBuilder::new();
    network.apply(&mut wasi);
    let captured = match stderr {
        Stderr::Inherit => {
            wasi.inherit_stderr();
            None
        }
        Stderr::Capture => {
            let capture = StderrCapture::new();
            wasi.stderr(capture.clone());
            Some(capture)
        }
    };
    let mut table = ResourceTable::new();
    table.set_max_capacity(bounds.resources);
    let state = State {
        wasi: wasi.build(),
        table,
        limiter: StoreLimiter::new(*bounds),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    (store, captured)
}
