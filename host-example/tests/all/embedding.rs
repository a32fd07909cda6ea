//! What an embedder builds on: the host's bounds checked when it is made,
//! engines it refuses, and the generated bindings on its own store data.

use port_host::{Candidates, Limits, NetworkPolicy, PortHost, PortRange, PortUtils, Stderr};
use std::time::Duration;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

#[test]
fn a_zero_call_timeout_is_refused_when_the_host_is_made() {
    let limits = Limits::default().with_call_timeout(Duration::ZERO);
    let error = PortHost::embedded(limits).expect_err("refused");
    assert!(error.to_string().contains("timeout of zero"), "{error}");
}

#[test]
fn an_oversized_call_timeout_means_no_deadline_rather_than_a_short_one() {
    let limits = Limits::default().with_call_timeout(Duration::MAX);
    let host = PortHost::embedded(limits).unwrap();
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let port = crate::common::free_port();
    assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
}

#[test]
fn an_engine_without_epoch_interruption_is_refused_with_the_reason() {
    let engine = Engine::default();
    let error = PortHost::on_engine(&engine, Limits::default()).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("epoch_interruption(true)"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

struct Embedder {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Embedder {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[test]
fn the_generated_bindings_answer_on_the_embedders_own_store_data() {
    let engine = Engine::new(&Config::new()).unwrap();
    let component = Component::new(&engine, port_host::COMPONENT).unwrap();
    let linker = port_host::async_linker::<Embedder>(&engine).unwrap();
    let mut wasi = WasiCtxBuilder::new();
    NetworkPolicy::loopback().apply(&mut wasi);
    let mut store = Store::new(
        &engine,
        Embedder {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        },
    );
    let start = crate::common::free_block(2);
    let ports = Candidates::Range(PortRange {
        start: start.into(),
        end: u32::from(start) + 2,
        step: 1,
    });
    let answer = crate::common::runtime().block_on(async {
        let utils = PortUtils::instantiate_async(&mut store, &component, &linker).await?;
        let port = utils.hbutils_network_port();
        port.call_get_free_port(&mut store, Some(&ports), true)
            .await
    });
    assert_eq!(answer.unwrap(), Ok(start));
}
