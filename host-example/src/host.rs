//! The host: one engine and the compiled component, linked for sync or for
//! async calls on first use, from which each caller gets a session of its own.

use crate::exports::ExportIndices;
use crate::sandbox::{self, Calls, Limits, State, Stderr};
use crate::{AsyncSession, NetworkPolicy, Session};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{Engine, Result, bail};
use wasmtime_wasi::WasiView;

/// The component built from this workspace (`src/`, `wit/`), embedded at build time.
pub const COMPONENT: &[u8] = include_bytes!(env!("PORT_COMPONENT_WASM"));

/// [`COMPONENT`] compiled to native code by the build script, so that a host
/// process starts without running Cranelift.
const PRECOMPILED: &[u8] = include_bytes!(env!("PORT_COMPONENT_CWASM"));

/// A compiled component, ready to be instantiated into sessions.
pub struct PortHost {
    engine: Engine,
    component: Component,
    // Linking WASI and checking the component's imports against it is most
    // of a host's making after the code is loaded; a caller that only ever
    // makes sync (or async) sessions, like the CLI, pays for one of the two.
    sync_pre: OnceLock<InstancePre<State>>,
    async_pre: OnceLock<InstancePre<State>>,
    exports: ExportIndices,
    limits: Limits,
    precompiled: bool,
    live: Arc<AtomicUsize>,
}

/// Holds one of a host's [`Limits::sessions`] places; gives it back when dropped.
pub(crate) struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PortHost {
    /// The embedded component with default limits, on an engine of its own.
    pub fn new() -> Result<Self> {
        Self::embedded(Limits::default())
    }

    /// The embedded component with `limits`, on an engine of its own.
    pub fn embedded(limits: Limits) -> Result<Self> {
        let engine = sandbox::engine(&limits)?;
        Self::on_engine(&engine, limits)
    }

    /// The embedded component for a process that runs it and nothing else,
    /// like the `port-host` CLI: on an engine that loads the build's native
    /// code and cannot compile, which spares making Cranelift, most of an
    /// engine's start. Where the build's code does not suit this CPU, the
    /// component is compiled on a full engine instead, as with
    /// [`PortHost::embedded`]. Use that when [`PortHost::engine`] is to
    /// compile other components too.
    ///
    /// ```
    /// use port_host::{ErrorCode, Limits, NetworkPolicy, PortHost, Stderr};
    ///
    /// # fn main() -> wasmtime::Result<()> {
    /// let host = PortHost::embedded_load_only(Limits::default())?;
    /// assert!(host.loaded_precompiled());
    /// let mut session = host.session(NetworkPolicy::loopback(), Stderr::Capture)?;
    /// // The component's own answer: port 0 is not a port to ask about.
    /// let answer = session.is_free_port(0)?;
    /// assert!(matches!(answer, Err(ErrorCode::InvalidArgument(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn embedded_load_only(limits: Limits) -> Result<Self> {
        let engine = sandbox::loading_engine(&limits)?;
        match precompiled(&engine, PRECOMPILED) {
            Some(component) => {
                sandbox::start_epoch_ticker(&engine);
                Self::instantiable(&engine, &component, limits, true)
            }
            None => Self::embedded(limits),
        }
    }

    /// The embedded component on an engine the embedder already has.
    ///
    /// The engine needs `Config::epoch_interruption(true)` and its epoch
    /// advanced every [`EPOCH_TICK`](crate::EPOCH_TICK) (see
    /// [`start_epoch_ticker`](crate::start_epoch_ticker)): deadlines and the
    /// async yield are counted in those ticks. The build's native code is used
    /// when the engine's settings match this crate's; otherwise the component
    /// is compiled here. `limits.pooled_instances` is the engine's business
    /// and is ignored.
    pub fn on_engine(engine: &Engine, limits: Limits) -> Result<Self> {
        let (component, precompiled) = load_built(engine, PRECOMPILED, COMPONENT)?;
        Self::instantiable(engine, &component, limits, precompiled)
    }

    /// Another build of the component, from a `.wasm` file.
    pub fn from_file(path: &Path, limits: Limits) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, limits)
    }

    /// Another build of the component, as `.wasm` bytes; compiled here.
    pub fn from_bytes(wasm: &[u8], limits: Limits) -> Result<Self> {
        Self::from_bytes_on_engine(&sandbox::engine(&limits)?, wasm, limits)
    }

    /// Another build of the component on an engine the embedder already has
    /// (see [`PortHost::on_engine`] for what the engine needs); compiled here.
    pub fn from_bytes_on_engine(engine: &Engine, wasm: &[u8], limits: Limits) -> Result<Self> {
        let component = Component::new(engine, wasm).context("not a valid component")?;
        Self::instantiable(engine, &component, limits, false)
    }

    fn instantiable(
        engine: &Engine,
        component: &Component,
        limits: Limits,
        precompiled: bool,
    ) -> Result<Self> {
        Ok(PortHost {
            engine: engine.clone(),
            exports: ExportIndices::new(component)?,
            component: component.clone(),
            sync_pre: OnceLock::new(),
            async_pre: OnceLock::new(),
            limits,
            precompiled,
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Whether the component was loaded from the build's native code rather
    /// than compiled when the host was made.
    pub fn loaded_precompiled(&self) -> bool {
        self.precompiled
    }

    /// The engine every session of this host shares.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The bounds every session of this host gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store and instance under `network`, for sync calls.
    ///
    /// The first sync session links WASI for sync calls; a component that
    /// imports what this host does not give is refused there.
    ///
    /// Its calls work inside a tokio runtime too (each then runs on a thread
    /// of its own), but there [`PortHost::async_session`] is the better fit:
    /// it blocks no worker and its deadline covers host calls.
    pub fn session(&self, network: NetworkPolicy, stderr: Stderr) -> Result<Session> {
        let admission = self.admit()?;
        let (mut store, stderr) =
            sandbox::sandboxed_store(&self.engine, network, stderr, self.limits, Calls::Sync);
        let instance = self
            .linked(&self.sync_pre, sync_linker)?
            .instantiate(&mut store)
            .map_err(|error| sandbox::explain(error, &self.limits))?;
        let exports = self.exports.load(&mut store, &instance)?;
        Ok(Session::new(store, exports, self.limits, stderr, admission))
    }

    /// A fresh store and instance under `network`, for async calls; every
    /// call, instantiation included, ends within `limits.call_timeout`.
    ///
    /// The first async session links WASI for async calls; a component that
    /// imports what this host does not give is refused there.
    pub async fn async_session(
        &self,
        network: NetworkPolicy,
        stderr: Stderr,
    ) -> Result<AsyncSession> {
        let admission = self.admit()?;
        let pre = self.linked(&self.async_pre, async_linker)?;
        let (mut store, stderr) =
            sandbox::sandboxed_store(&self.engine, network, stderr, self.limits, Calls::Async);
        let instance =
            match sandbox::within_deadline(&self.limits, pre.instantiate_async(&mut store)).await {
                Ok(instance) => instance?,
                Err(late) => bail!("{late}"),
            };
        let exports = self.exports.load(&mut store, &instance)?;
        Ok(AsyncSession::new(
            store,
            exports,
            self.limits,
            stderr,
            admission,
        ))
    }

    /// The component linked by `linker`, linked the first time it is asked
    /// for. Two threads asking at once may both link; one result is kept.
    fn linked<'a>(
        &self,
        slot: &'a OnceLock<InstancePre<State>>,
        linker: fn(&Engine) -> Result<Linker<State>>,
    ) -> Result<&'a InstancePre<State>> {
        if let Some(pre) = slot.get() {
            return Ok(pre);
        }
        let pre = linker(&self.engine)?
            .instantiate_pre(&self.component)
            .context("the component needs imports this host does not give")?;
        Ok(slot.get_or_init(|| pre))
    }

    fn admit(&self) -> Result<Admission> {
        let bound = self.limits.sessions;
        let admitted = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < bound).then_some(live + 1)
            });
        match admitted {
            Ok(_) => Ok(Admission(self.live.clone())),
            Err(_) => bail!("this host already runs its limit of {bound} sessions"),
        }
    }
}

/// `bytes`, native code this build's script made, on `engine`, when the
/// engine accepts it.
fn precompiled(engine: &Engine, bytes: &[u8]) -> Option<Component> {
    // SAFETY: `bytes` is what this build's script made with this wasmtime and
    // `engine_config`, never outside input; wasmtime still checks its
    // version and settings and refuses a mismatch.
    unsafe { Component::deserialize(engine, bytes) }.ok()
}

/// A component the build embedded: its native code when `engine` accepts it
/// (and `true`), else compiled here from `wasm` (another engine
/// configuration, or a CPU the build's code does not suit).
pub(crate) fn load_built(engine: &Engine, native: &[u8], wasm: &[u8]) -> Result<(Component, bool)> {
    match precompiled(engine, native) {
        Some(component) => Ok((component, true)),
        None => Ok((Component::new(engine, wasm)?, false)),
    }
}

/// WASI p2 for sync calls, on any store data that is a [`WasiView`]. What the
/// guest may reach is decided per store, by the [`NetworkPolicy`] applied to
/// its `WasiCtxBuilder`.
pub fn sync_linker<T: WasiView + 'static>(engine: &Engine) -> Result<Linker<T>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// WASI p2 for async calls (`call_async`, `instantiate_async`), on any store
/// data that is a [`WasiView`].
pub fn async_linker<T: WasiView + 'static>(engine: &Engine) -> Result<Linker<T>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}
