//! The echo-server example, composed with the component at build time: a
//! consumer of `hbutils:network/port` whose only imports are WASI, run in the
//! same loopback-TCP sandbox as the component itself.

use crate::{Candidates, ErrorCode, Limits, NetworkPolicy, State, Stderr};
use wasmtime::component::TypedFunc;
use wasmtime::error::Context;
use wasmtime::{Result, Store};

/// The composed component (echo-server + hbutils-port), made by the build script.
pub const ECHO_COMPONENT: &[u8] = include_bytes!(env!("ECHO_COMPONENT_WASM"));

/// [`ECHO_COMPONENT`] compiled to native code by the build script.
const PRECOMPILED: &[u8] = include_bytes!(env!("ECHO_COMPONENT_CWASM"));

/// Serving is waiting on the network, which the epoch deadline does not
/// measure; this many ticks (over a century) means no deadline at all.
const NO_DEADLINE: u64 = 1 << 40;

/// The consumer's export, as composition re-exports it.
const SERVER: &str = "hbutils:echo/server@0.1.0";

/// A started echo server: an instance that holds its listening socket.
pub struct EchoServer {
    store: Store<State>,
    serve: TypedFunc<(Option<u32>,), (Result<(), String>,)>,
    port: u16,
}

impl EchoServer {
    /// Instantiates the composed component under `network` and lets it
    /// reserve a port among `ports` and take the socket. The outer error is
    /// the host's; the inner one is the component's.
    pub fn start(
        network: NetworkPolicy,
        ports: Option<&Candidates>,
        strict: bool,
    ) -> Result<Result<EchoServer, ErrorCode>> {
        let limits = Limits::default();
        let engine = crate::engine(&limits)?;
        let (component, _) = crate::load_embedded(&engine, PRECOMPILED, ECHO_COMPONENT)?;
        let (mut store, _) = crate::sandboxed_store(&engine, network, Stderr::Inherit, limits);
        let instance = crate::linker(&engine)?.instantiate(&mut store, &component)?;
        // The interface is two functions, so they are looked up by name and
        // typed here; the argument and error types are the port interface's.
        let server = component
            .get_export_index(None, SERVER)
            .with_context(|| format!("the echo component does not export {SERVER}"))?;
        let function = |name: &str| {
            component
                .get_export_index(Some(&server), name)
                .with_context(|| format!("{SERVER} has no function {name}"))
        };
        let start = instance
            .get_typed_func::<(Option<&Candidates>, bool), (Result<u16, ErrorCode>,)>(
                &mut store,
                function("start")?,
            )?;
        let serve = instance.get_typed_func(&mut store, function("serve")?)?;
        let (started,) = start.call(&mut store, (ports, strict))?;
        Ok(started.map(|port| EchoServer { store, serve, port }))
    }

    /// The port the server accepts on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Echoes `connections` connections, one at a time, or serves for ever
    /// when `None`. The inner error is the socket error-code name.
    pub fn serve(&mut self, connections: Option<u32>) -> Result<Result<(), String>> {
        self.store.set_epoch_deadline(NO_DEADLINE);
        let (served,) = self.serve.call(&mut self.store, (connections,))?;
        Ok(served)
    }
}

/// The names the composed component imports, to show that they are all WASI.
pub fn echo_component_imports() -> Result<Vec<String>> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, ECHO_COMPONENT)?;
    let component_type = component.component_type();
    let names = component_type
        .imports(&engine)
        .map(|(name, _)| name.to_owned());
    Ok(names.collect())
}
