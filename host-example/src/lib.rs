//! Embedding the `hbutils-port` component in a wasmtime host.
//!
//! The shape is wasmtime's own component example: bindings generated from the
//! WIT, an engine and a pre-instantiated component built once ([`PortHost`]),
//! then a store per caller ([`Session`]) with typed calls. What the guest may
//! do on the network is decided by [`NetworkPolicy`], in `policy.rs`.
//!
//! ```
//! use port_host::{Candidates, NetworkPolicy, PortHost, PortRange, Stderr, describe};
//!
//! # fn main() -> wasmtime::Result<()> {
//! // Engine and compiled component: once per process.
//! let host = PortHost::new()?;
//! // A store and an instance: one per caller.
//! let mut session = host.session(NetworkPolicy::LoopbackTcp, Stderr::Inherit)?;
//!
//! match session.is_free_port(8080)? {
//!     Ok(free) => println!("8080 is free: {free}"),
//!     Err(error) => eprintln!("cannot tell: {}", describe(&error)),
//! }
//! let range = Candidates::Range(PortRange { start: 8000, end: 8100, step: 1 });
//! match session.get_free_port(Some(&range), true)? {
//!     Ok(port) => println!("use {port}"),
//!     Err(error) => eprintln!("{}", describe(&error)),
//! }
//!
//! // Or hold a port until it is needed: nobody else can bind it meanwhile.
//! if let Ok(reservation) = session.reserve_port(Some(&range), true)? {
//!     if let Ok(port) = session.reservation_port(&reservation)? {
//!         println!("reserved {port}");
//!     }
//!     // Or `take_socket` for the listening socket itself.
//!     session.release(&reservation)?.ok();
//! }
//! # Ok(())
//! # }
//! ```

mod echo;
mod engine_config;
mod policy;
mod reservation;

use std::path::Path;
use std::thread;
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime::{Result, bail};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use echo::{ECHO_COMPONENT, EchoServer, echo_component_imports};
pub use exports::hbutils::network::port::{
    Candidates, ErrorCode, FamilyStatus, PortRange, PortStatus, ReservationError,
};
pub use policy::{NetworkPolicy, loopback_tcp};
pub use reservation::Reservation;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "port-utils",
    additional_derives: [PartialEq, Eq],
    // The socket a reservation hands over is wasmtime-wasi's own `TcpSocket`,
    // living in the store's resource table like any socket the guest made.
    with: { "wasi": wasmtime_wasi::p2::bindings::sync },
    require_store_data_send: true,
});

/// The component built from this workspace (`src/`, `wit/`), embedded at build time.
pub const COMPONENT: &[u8] = include_bytes!(env!("PORT_COMPONENT_WASM"));

/// [`COMPONENT`] compiled to native code by the build script, so that a host
/// process starts without running Cranelift.
const PRECOMPILED: &[u8] = include_bytes!(env!("PORT_COMPONENT_CWASM"));

/// How often the engine's epoch advances; a call's deadline is counted in these.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bounds on what one store may use. A plugin host runs components it did not
/// write, so a runaway guest must end with an error rather than take the host.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Linear memory per store, in bytes.
    pub memory_bytes: usize,
    /// Wall time one call may run guest code before it is interrupted.
    pub call_timeout: Duration,
    /// `None`: each store maps its own memory when it is made. `Some(n)`: up
    /// to `n` stores live at once, in slots the engine maps once — cheaper
    /// per store, for hosts that make a store per request.
    pub pooled_instances: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        // Our component needs a few pages; a full 65,536-port list is 128 KiB.
        Limits {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(30),
            pooled_instances: None,
        }
    }
}

/// Where a session's guest writes its stderr (the strict-mode warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// The host process's own stderr.
    Inherit,
    /// A buffer, read back with [`Session::captured_stderr`].
    Capture,
}

/// A compiled component, ready to be instantiated into sessions.
pub struct PortHost {
    engine: Engine,
    pre: PortUtilsPre<State>,
    limits: Limits,
    precompiled: bool,
}

/// One store and one instance: what a single caller uses.
pub struct Session {
    store: Store<State>,
    bindings: PortUtils,
    deadline_ticks: u64,
    stderr: Option<MemoryOutputPipe>,
}

/// The data every store carries: WASI state and the store's limits.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PortHost {
    /// The embedded component with default limits.
    pub fn new() -> Result<Self> {
        Self::embedded(Limits::default())
    }

    /// The embedded component with `limits`.
    pub fn embedded(limits: Limits) -> Result<Self> {
        let engine = engine(&limits)?;
        let (component, precompiled) = load_embedded(&engine, PRECOMPILED, COMPONENT)?;
        Self::instantiable(engine, &component, limits, precompiled)
    }

    /// Whether the component was loaded from the build's native code rather
    /// than compiled at start-up.
    pub fn loaded_precompiled(&self) -> bool {
        self.precompiled
    }

    /// Another build of the component, from a `.wasm` file.
    pub fn from_file(path: &Path, limits: Limits) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(&bytes, limits)
    }

    /// Another build of the component, as `.wasm` bytes; compiled here.
    pub fn from_bytes(wasm: &[u8], limits: Limits) -> Result<Self> {
        let engine = engine(&limits)?;
        let component = Component::new(&engine, wasm).context("not a valid component")?;
        Self::instantiable(engine, &component, limits, false)
    }

    fn instantiable(
        engine: Engine,
        component: &Component,
        limits: Limits,
        precompiled: bool,
    ) -> Result<Self> {
        let linker = linker(&engine)?;
        let pre = linker
            .instantiate_pre(component)
            .context("the component needs imports this host does not give")?;
        let pre = PortUtilsPre::new(pre)
            .context("the component does not export hbutils:network/port@0.2.0")?;
        Ok(PortHost {
            engine,
            pre,
            limits,
            precompiled,
        })
    }

    /// A fresh store and instance under `network`.
    pub fn session(&self, network: NetworkPolicy, stderr: Stderr) -> Result<Session> {
        let (mut store, stderr) = sandboxed_store(&self.engine, network, stderr, self.limits);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(Session {
            store,
            bindings,
            deadline_ticks: deadline_ticks(self.limits.call_timeout),
            stderr,
        })
    }
}

impl Session {
    /// `is-free-port`. The outer error is the host's (a trap, a deadline); the
    /// inner one is the component's answer.
    pub fn is_free_port(&mut self, port: u16) -> Result<Result<bool, ErrorCode>> {
        self.call(|port_api, store| port_api.call_is_free_port(store, port))
    }

    /// `get-free-port`.
    pub fn get_free_port(
        &mut self,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<u16, ErrorCode>> {
        self.call(|port_api, store| port_api.call_get_free_port(store, ports, strict))
    }

    /// Runs one export under a fresh call deadline.
    fn call<T>(
        &mut self,
        export: impl FnOnce(&exports::hbutils::network::port::Guest, &mut Store<State>) -> Result<T>,
    ) -> Result<T> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = export(self.bindings.hbutils_network_port(), &mut self.store);
        explain_trap(result, self.deadline_ticks)
    }

    /// What the guest wrote to stderr so far, if the session captures it.
    pub fn captured_stderr(&self) -> Option<String> {
        self.stderr
            .as_ref()
            .map(|pipe| String::from_utf8_lossy(&pipe.contents()).into_owned())
    }
}

/// The engine every store shares, with its epoch ticking for call deadlines.
pub fn engine(limits: &Limits) -> Result<Engine> {
    let pool = limits.pooled_instances.map(|n| (n, limits.memory_bytes));
    let engine = Engine::new(&engine_config::engine_config(pool))?;
    spawn_epoch_ticker(&engine);
    Ok(engine)
}

/// A component embedded by the build: its build-time native code when this
/// engine accepts it (and `true`), else compiled here from `wasm`.
fn load_embedded(engine: &Engine, precompiled: &[u8], wasm: &[u8]) -> Result<(Component, bool)> {
    // SAFETY: `precompiled` is what this build's script made with this
    // wasmtime and `engine_config`, never outside input; wasmtime still
    // checks its version and settings and refuses a mismatch.
    match unsafe { Component::deserialize(engine, precompiled) } {
        Ok(component) => Ok((component, true)),
        // Built on a machine whose CPU features this one lacks, say.
        Err(_) => Ok((Component::new(engine, wasm)?, false)),
    }
}

/// WASI p2 for any component this host runs; what it may reach is decided per
/// store by its [`NetworkPolicy`].
pub fn linker(engine: &Engine) -> Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// A store whose guest gets `network` and nothing else of the host: no files,
/// no environment, no arguments, no stdin or stdout. Returns the stderr buffer
/// when `stderr` is [`Stderr::Capture`].
pub fn sandboxed_store(
    engine: &Engine,
    network: NetworkPolicy,
    stderr: Stderr,
    limits: Limits,
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
    let state = State {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .trap_on_grow_failure(true)
            .build(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(deadline_ticks(limits.call_timeout));
    (store, captured)
}

/// Advances `engine`'s epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            thread::sleep(EPOCH_TICK);
        }
    });
}

fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Names the deadline in the error when a call was interrupted by it.
fn explain_trap<T>(result: Result<T>, ticks: u64) -> Result<T> {
    match result {
        Err(error) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
            let seconds = (ticks * EPOCH_TICK.as_millis() as u64) as f64 / 1000.0;
            bail!("the component ran past its {seconds} s deadline and was stopped")
        }
        other => other,
    }
}

/// A one-line description of the component's error, for people.
pub fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::AccessDenied => {
            "access denied: the host refused a loopback TCP socket, so the port's state is unknown"
                .into()
        }
        ErrorCode::NoFreePort(message) => message.clone(),
        ErrorCode::InvalidArgument(message) => format!("invalid argument: {message}"),
        ErrorCode::Other(name) => format!("socket error: {name}"),
    }
}

/// The WIT name of the error's case, for machines.
pub fn error_name(error: &ErrorCode) -> &'static str {
    match error {
        ErrorCode::AccessDenied => "access-denied",
        ErrorCode::NoFreePort(_) => "no-free-port",
        ErrorCode::InvalidArgument(_) => "invalid-argument",
        ErrorCode::Other(_) => "other",
    }
}

/// The WIT name of a family's status.
pub fn family_status_name(status: FamilyStatus) -> &'static str {
    match status {
        FamilyStatus::Free => "free",
        FamilyStatus::InUse => "in-use",
        FamilyStatus::Denied => "denied",
        FamilyStatus::Unsupported => "unsupported",
    }
}
