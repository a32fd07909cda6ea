//! An embedder outside the port-host repository: a crate made with
//! `cargo new`, depending on the packaged port-host alone. It asks the
//! shipped component for a free port three ways and exits 0 only when each
//! answered with a usable one.

use port_host::{Candidates, Limits, NetworkPolicy, PortHost, PortRange, PortUtils, Stderr};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

fn main() -> wasmtime::Result<()> {
    // Any range; non-strict, so the OS's choice answers when none is free.
    let ports = Candidates::Range(PortRange {
        start: 15_000,
        end: 15_100,
        step: 1,
    });

    // 1. The library's own engine and sandbox.
    let host = PortHost::new()?;
    let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
    report("PortHost::new", session.get_free_port(Some(&ports), false)?)?;

    // 2. The embedder's engine: epoch interruption on, ticked.
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    port_host::start_epoch_ticker(&engine);
    let host = PortHost::on_engine(&engine, Limits::default())?;
    let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
    report(
        "PortHost::on_engine",
        session.get_free_port(Some(&ports), false)?,
    )?;

    // 3. The embedder's own store data, linker and the generated bindings
    //    (async calls, on a runtime of its own); the grant is port-host's
    //    policy applied to its own WASI builder.
    let engine = Engine::default();
    let component = Component::new(&engine, port_host::COMPONENT)?;
    let linker = port_host::async_linker::<MyState>(&engine)?;
    let mut wasi = WasiCtxBuilder::new();
    NetworkPolicy::loopback().apply(&mut wasi);
    let state = MyState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, state);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(async {
        let utils = PortUtils::instantiate_async(&mut store, &component, &linker).await?;
        let port = utils.hbutils_network_port();
        port.call_get_free_port(&mut store, Some(&ports), false)
            .await
    })?;
    report("own store data", answer)
}

struct MyState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for MyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn report(way: &str, answer: Result<u16, port_host::ErrorCode>) -> wasmtime::Result<()> {
    match answer {
        Ok(port) if port >= 1024 => {
            println!("{way}: {port}");
            Ok(())
        }
        other => wasmtime::bail!("{way}: no usable port: {other:?}"),
    }
}
