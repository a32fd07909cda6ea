//! `port-host` must not run Cranelift at start: the embedded component is
//! loaded from native code the build made, with either allocator.

use port_host::{ErrorCode, Limits, NetworkPolicy, Pooling, PortHost, Stderr, StoreBounds};

fn pool(stores: u32) -> Pooling {
    Pooling::new(stores, StoreBounds::default())
}

/// Whether the build made native code for this target. A cross build for
/// another architecture cannot (build.rs): there `test` checks that the
/// component is compiled instead, and says that the load went unchecked.
fn precompiled(test: &str) -> bool {
    if cfg!(port_host_compiles_at_start) {
        crate::common::skipped(&format!(
            "{test}: this build has no native code for {} (cross-compiled by a Cranelift \
             without its backend), so the component is compiled at start instead",
            std::env::consts::ARCH
        ));
    }
    !cfg!(port_host_compiles_at_start)
}

#[test]
fn embedded_component_loads_precompiled() {
    let host = PortHost::new().unwrap();
    assert_eq!(
        host.loaded_precompiled(),
        precompiled("embedded_component_loads_precompiled")
    );
}

#[test]
fn pooled_host_loads_the_same_precompiled_component_and_answers() {
    let host = PortHost::pooled(pool(4), Limits::default()).unwrap();
    assert_eq!(
        host.loaded_precompiled(),
        precompiled("pooled_host_loads_the_same_precompiled_component")
    );
    let port = crate::common::free_port();
    // More sessions over time than slots: a dropped session returns its slot.
    for _ in 0..16 {
        let mut session = host
            .session(NetworkPolicy::loopback(), Stderr::Capture)
            .unwrap();
        assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
    }
}

#[test]
fn pool_exhaustion_is_an_error_not_a_hang() {
    let host = PortHost::pooled(pool(2), Limits::default()).unwrap();
    let _live: Vec<_> = (0..2)
        .map(|_| {
            host.session(NetworkPolicy::loopback(), Stderr::Capture)
                .unwrap()
        })
        .collect();
    assert!(
        host.session(NetworkPolicy::loopback(), Stderr::Capture)
            .is_err()
    );
}

#[test]
fn another_build_from_bytes_is_the_one_that_runs() {
    // The escape guest answers is-free-port(2) by hoarding sockets, which the
    // embedded component never does: the answer tells which build ran.
    let wasm = std::fs::read(test_guests::ESCAPE_GUEST).unwrap();
    let host = PortHost::from_bytes(&wasm, Limits::default()).unwrap();
    assert!(!host.loaded_precompiled());
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    assert_eq!(
        session.get_free_port(None, false).unwrap(),
        Err(ErrorCode::Other("hostile".into()))
    );
}

/// A session of `host` tells a free port from the OS's word for it.
fn assert_answers(host: &PortHost) {
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    assert_eq!(
        session.is_free_port(crate::common::free_port()).unwrap(),
        Ok(true)
    );
}

#[test]
fn a_host_on_the_embedders_engine_uses_the_precompiled_component_when_settings_match() {
    let engine = port_host::engine(None).unwrap();
    let host = PortHost::on_engine(&engine, Limits::default()).unwrap();
    assert_eq!(
        host.loaded_precompiled(),
        precompiled("a_host_on_the_embedders_engine_uses_the_precompiled_component")
    );
    assert_answers(&host);
}

#[test]
fn a_host_on_an_engine_with_other_settings_compiles_the_component_instead() {
    let mut config = wasmtime::Config::new();
    // A smaller memory reservation changes the code's bounds checks, so the
    // build's native code does not fit this engine.
    config.epoch_interruption(true).memory_reservation(1 << 24);
    let engine = wasmtime::Engine::new(&config).unwrap();
    port_host::start_epoch_ticker(&engine);
    let host = PortHost::on_engine(&engine, Limits::default()).unwrap();
    assert!(!host.loaded_precompiled());
    assert_answers(&host);
}

#[test]
fn sessions_past_the_hosts_bound_are_refused_until_one_ends() {
    let host = PortHost::embedded(Limits::default().with_sessions(2)).unwrap();
    let first = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let _second = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let refused = host.session(NetworkPolicy::loopback(), Stderr::Capture);
    let error = refused.expect_err("a third session is refused").to_string();
    assert!(error.contains("limit of 2 sessions"), "{error}");
    drop(first);
    assert!(
        host.session(NetworkPolicy::loopback(), Stderr::Capture)
            .is_ok()
    );
}
