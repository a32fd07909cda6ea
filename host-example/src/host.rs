//! The host: one engine and the compiled component, linked on first use,
//! from which each caller gets a session of its own.

use crate::admission::Sessions;
use crate::bindings::PortUtilsPre;
use crate::engine::{engine, loading_engine};
use crate::epoch::start_epoch_ticker;
use crate::limits::{Limits, Pooling};
use crate::store::{State, Stderr};
use crate::{AsyncSession, NetworkPolicy, PORT_INTERFACE, Session};
use std::path::Path;
use std::sync::OnceLock;
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context;
use wasmtime::{Engine, Result, bail};
use wasmtime_wasi::WasiView;

/// The component this crate ships (`component/hbutils_port.wasm`, built from
/// the `hbutils-port` crate's source by `cargo xtask component`).
pub const COMPONENT: &[u8] = include_bytes!("../component/hbutils_port.wasm");

/// [`COMPONENT`] compiled to native code by the build script, so that a host
/// process starts without running Cranelift; empty where the build's
/// Cranelift has no backend for the target (a cross build for another
/// architecture), and then the component is compiled when a host is made.
const PRECOMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hbutils_port.cwasm"));

/// A compiled component, ready to be instantiated into sessions.
///
/// Cloning is cheap and shares everything: the engine, the compiled code,
/// the linking, and the count of live sessions that
/// [`Limits::sessions`] bounds.
#[derive(Clone)]
pub struct PortHost {
    engine: Engine,
    component: Component,
    // Linking WASI and checking the component's imports against it is most
    // of a host's making after the code is loaded; it is done at the first
    // session, so a host that is made and not used pays nothing for it.
    pre: OnceLock<PortUtilsPre<State>>,
    limits: Limits,
    precompiled: bool,
    sessions: Sessions,
}

impl std::fmt::Debug for PortHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortHost")
            .field("limits", &self.limits)
            .field("precompiled", &self.precompiled)
            .field("linked", &self.pre.get().is_some())
            .field("live_sessions", &self.sessions.live())
            .finish_non_exhaustive()
    }
}

impl PortHost {
    /// The shipped component with default limits, on an engine of its own.
    pub fn new() -> Result<Self> {
        Self::embedded(Limits::default())
    }

    /// The shipped component with `limits`, on an engine of its own.
    pub fn embedded(limits: Limits) -> Result<Self> {
        Self::on_engine(&engine(None)?, limits)
    }

    /// The shipped component on an engine of its own whose stores come from
    /// the pooling allocator's slots (see [`Pooling`]).
    /// `pooling.per_store` must equal `limits.store`: a slot sized for more
    /// than the limiter allows would only waste address space, and one sized
    /// for less would fail stores the limits promise; any difference is
    /// refused.
    pub fn pooled(pooling: Pooling, limits: Limits) -> Result<Self> {
        if pooling.per_store != limits.store {
            bail!(
                "the pool's slots ({:?}) differ from the sessions' store bounds ({:?}): \
                 give Pooling::per_store the value of Limits::store",
                pooling.per_store,
                limits.store
            );
        }
        Self::on_engine(&engine(Some(&pooling))?, limits)
    }

    /// The shipped component for a process that runs it and nothing else,
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
    /// # #[cfg(not(port_host_compiles_at_start))]
    /// assert!(host.loaded_precompiled());
    /// let mut session = host.session(NetworkPolicy::loopback(), Stderr::Capture)?;
    /// // The component's own answer: port 0 is not a port to ask about.
    /// let answer = session.is_free_port(0)?;
    /// assert!(matches!(answer, Err(ErrorCode::InvalidArgument(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn embedded_load_only(limits: Limits) -> Result<Self> {
        let engine = loading_engine()?;
        match precompiled(&engine, PRECOMPILED) {
            Some(component) => {
                start_epoch_ticker(&engine);
                Self::instantiable(&engine, component, limits, true)
            }
            None => Self::embedded(limits),
        }
    }

    /// The shipped component on an engine the embedder already has.
    ///
    /// The engine needs `Config::epoch_interruption(true)` and its epoch
    /// advanced every [`EPOCH_TICK`](crate::EPOCH_TICK) (see
    /// [`start_epoch_ticker`](crate::start_epoch_ticker), which does nothing
    /// for an engine it already ticks): a guest spinning in its own code
    /// yields to its deadline at each tick. The build's native code is used
    /// when the engine's settings match this crate's; otherwise the
    /// component is compiled here.
    pub fn on_engine(engine: &Engine, limits: Limits) -> Result<Self> {
        let (component, precompiled) = match precompiled(engine, PRECOMPILED) {
            Some(component) => (component, true),
            None => (Self::compile(engine, COMPONENT)?, false),
        };
        Self::instantiable(engine, component, limits, precompiled)
    }

    /// Another build of the component, from a `.wasm` (or `.wat`) file.
    pub fn from_file(path: &Path, limits: Limits) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, limits)
    }

    /// Another build of the component, as bytes; compiled here.
    pub fn from_bytes(wasm: &[u8], limits: Limits) -> Result<Self> {
        Self::from_bytes_on_engine(&engine(None)?, wasm, limits)
    }

    /// Another build of the component on an engine the embedder already has
    /// (see [`PortHost::on_engine`] for what the engine needs); compiled here.
    pub fn from_bytes_on_engine(engine: &Engine, wasm: &[u8], limits: Limits) -> Result<Self> {
        let component = Self::compile(engine, wasm)?;
        Self::instantiable(engine, component, limits, false)
    }

    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component> {
        Component::new(engine, wasm).context("not a valid component")
    }

    fn instantiable(
        engine: &Engine,
        component: Component,
        limits: Limits,
        precompiled: bool,
    ) -> Result<Self> {
        limits.check()?;
        if !engine.get_epoch_interruption() {
            bail!(
                "the engine needs Config::epoch_interruption(true): without it a call's \
                 deadline cannot stop a guest spinning in its own code"
            );
        }
        Ok(PortHost {
            engine: engine.clone(),
            component,
            pre: OnceLock::new(),
            limits,
            precompiled,
            sessions: Sessions::new(limits.sessions),
        })
    }

    /// Whether the component was loaded from the build's native code rather
    /// than compiled when the host was made. Never, in a build for an
    /// architecture other than the building machine's: its build script has
    /// only that machine's compiler backend, and makes no native code.
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

    /// A fresh store and instance under `network`, for sync calls. Every
    /// call, instantiation included, ends within `limits.call_timeout`.
    pub fn session(&self, network: NetworkPolicy, stderr: Stderr) -> Result<Session> {
        Session::start(async || self.async_session(network, stderr).await)
    }

    /// A fresh store and instance under `network`, for async calls. Every
    /// call, instantiation included, ends within `limits.call_timeout`.
    pub async fn async_session(
        &self,
        network: NetworkPolicy,
        stderr: Stderr,
    ) -> Result<AsyncSession> {
        let admission = self.sessions.admit()?;
        let pre = self.linked()?;
        AsyncSession::start(&self.engine, pre, network, stderr, self.limits, admission).await
    }

    /// The component linked for async calls, linked the first time it is
    /// asked for. Two threads asking at once may both link; one is kept.
    pub(crate) fn linked(&self) -> Result<&PortUtilsPre<State>> {
        if let Some(pre) = self.pre.get() {
            return Ok(pre);
        }
        let instance_pre = async_linker(&self.engine)?
            .instantiate_pre(&self.component)
            .context("the component needs imports this host does not give")?;
        let pre = PortUtilsPre::new(instance_pre).with_context(|| {
            format!("the component does not export {PORT_INTERFACE} as this host calls it")
        })?;
        Ok(self.pre.get_or_init(|| pre))
    }
}

/// `bytes`, native code this build's script made, on `engine`, when the
/// engine accepts it.
fn precompiled(engine: &Engine, bytes: &[u8]) -> Option<Component> {
    if bytes.is_empty() {
        return None;
    }
    // SAFETY: `bytes` is what this build's script made with this wasmtime and
    // `engine_config`, never outside input; wasmtime still checks its
    // version and settings and refuses a mismatch.
    unsafe { Component::deserialize(engine, bytes) }.ok()
}

/// WASI p2 for async calls (`call_async`, `instantiate_async`), on any store
/// data that is a [`WasiView`]: what every session uses, and what the
/// generated [`PortUtils`](crate::PortUtils) calls need.
///
/// There is no sync twin on purpose. A [`sandboxed_store`](crate::sandboxed_store)
/// yields at every epoch tick, which only an async call can do: a sync call
/// into it fails as soon as it runs past one tick. And wasmtime-wasi's sync
/// bindings panic inside a tokio runtime (wasmtime#11339). Sync callers use
/// a [`Session`], which drives these async calls to their end.
pub fn async_linker<T: WasiView + 'static>(engine: &Engine) -> Result<Linker<T>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}
