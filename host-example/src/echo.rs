//! The echo-server example, composed with the component at build time: a
//! consumer of `hbutils:network/port` whose only imports are WASI, run in the
//! same sandbox as the component itself, on the async path.

use crate::host::{async_linker, load_built};
use crate::sandbox::{self, Calls, Limits, State, Stderr};
use crate::{Candidates, ErrorCode, NetworkPolicy};
use wasmtime::component::TypedFunc;
use wasmtime::error::Context;
use wasmtime::{Result, Store, bail};

/// The composed component (echo-server + hbutils-port), made by the build script.
pub const ECHO_COMPONENT: &[u8] = include_bytes!(env!("ECHO_COMPONENT_WASM"));

/// [`ECHO_COMPONENT`] compiled to native code by the build script.
const PRECOMPILED: &[u8] = include_bytes!(env!("ECHO_COMPONENT_CWASM"));

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
    /// reserve a port among `ports` and take the socket, within
    /// `limits.call_timeout`. The outer error is the host's; the inner one is
    /// the component's.
    pub async fn start(
        network: NetworkPolicy,
        ports: Option<&Candidates>,
        strict: bool,
        limits: Limits,
    ) -> Result<Result<EchoServer, ErrorCode>> {
        let engine = sandbox::engine(&limits)?;
        let (component, _) = load_built(&engine, PRECOMPILED, ECHO_COMPONENT)?;
        let (mut store, _) =
            sandbox::sandboxed_store(&engine, network, Stderr::Inherit, limits, Calls::Async);
        let linker = async_linker(&engine)?;
        let starting = async {
            let instance = linker.instantiate_async(&mut store, &component).await?;
            // The interface is two functions, so they are looked up by name
            // and typed here; the argument and error types are the port
            // interface's.
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
            let (started,) = start.call_async(&mut store, (ports, strict)).await?;
            wasmtime::Result::Ok((started, serve))
        };
        let (started, serve) = match sandbox::within_deadline(&limits, starting).await {
            Ok(started) => started?,
            Err(late) => bail!("{late}"),
        };
        Ok(started.map(|port| EchoServer { store, serve, port }))
    }

    /// The port the server accepts on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Echoes `connections` connections, one at a time, or serves for ever
    /// when `None`: waiting for clients is the job, so no deadline applies.
    /// The inner error is the socket error-code name.
    pub async fn serve(&mut self, connections: Option<u32>) -> Result<Result<(), String>> {
        let (served,) = self
            .serve
            .call_async(&mut self.store, (connections,))
            .await?;
        Ok(served)
    }
}
