//! Runs the echo-server example (built by the `test-guests` crate) composed
//! with the component port-host ships: a consumer of `hbutils:network/port`
//! whose only imports are WASI, in the same sandbox as the component itself,
//! on the async path. Shared by the echo tests and `examples/serve_echo.rs`.

use port_host::{Candidates, ErrorCode, Limits, NetworkPolicy, State, Stderr};
use wasmtime::component::{Component, TypedFunc};
use wasmtime::error::Context;
use wasmtime::{Result, Store, bail};

/// The interface the echo server imports and the component exports.
const PORT: &str = "hbutils:network/port@0.4.0";
/// The consumer's export, as composition re-exports it.
pub const SERVER: &str = "hbutils:echo/server@0.1.0";

/// The composed component's bytes: the consumer's import of
/// `hbutils:network/port` plugged with the shipped component's export. What
/// neither satisfies (WASI) stays an import of the result, one import per
/// name for both. The port interface is exported as well as the server: the
/// server's functions use its types (`candidates`, `error-code`), and a
/// component may only export what names types it exports or imports.
pub fn composed() -> Vec<u8> {
    use wac_graph::{CompositionGraph, EncodeOptions, types::Package};
    let consumer = std::fs::read(test_guests::ECHO_SERVER).expect("test-guests built it");
    let compose = || -> std::result::Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut graph = CompositionGraph::new();
        let provider = Package::from_bytes(
            "hbutils:port",
            None,
            port_host::COMPONENT.to_vec(),
            graph.types_mut(),
        )?;
        let provider = graph.register_package(provider)?;
        let consumer = Package::from_bytes("hbutils:echo", None, consumer, graph.types_mut())?;
        let consumer = graph.register_package(consumer)?;
        let provider = graph.instantiate(provider);
        let port = graph.alias_instance_export(provider, PORT)?;
        graph.export(port, PORT)?;
        let consumer = graph.instantiate(consumer);
        graph.set_instantiation_argument(consumer, PORT, port)?;
        let server = graph.alias_instance_export(consumer, SERVER)?;
        graph.export(server, SERVER)?;
        Ok(graph.encode(EncodeOptions::default())?)
    };
    compose().expect("the echo server composes with the shipped component")
}

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
        let engine = port_host::engine(None)?;
        let component = Component::new(&engine, composed())?;
        let (mut store, _) =
            port_host::sandboxed_store(&engine, network, Stderr::Inherit, &limits.store);
        let linker = port_host::async_linker(&engine)?;
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
            Ok::<_, wasmtime::Error>((started, serve))
        };
        let (started, serve) = match tokio::time::timeout(limits.call_timeout, starting).await {
            Ok(started) => started?,
            Err(_) => bail!(
                "the echo server did not start within {:?}",
                limits.call_timeout
            ),
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
