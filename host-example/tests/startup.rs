//! `port-host` must not run Cranelift at start: the embedded component is
//! loaded from native code the build made, with either allocator.

mod common;

use port_host::{Limits, NetworkPolicy, PortHost, Stderr};

#[test]
fn embedded_component_loads_precompiled() {
    assert!(PortHost::new().unwrap().loaded_precompiled());
}

#[test]
fn pooled_host_loads_the_same_precompiled_component_and_answers() {
    let host = PortHost::embedded(Limits {
        pooled_instances: Some(4),
        ..Limits::default()
    })
    .unwrap();
    assert!(host.loaded_precompiled());
    let port = common::free_port();
    // More sessions over time than slots: a dropped session returns its slot.
    for _ in 0..16 {
        let mut session = host
            .session(NetworkPolicy::LoopbackTcp, Stderr::Capture)
            .unwrap();
        assert_eq!(session.is_free_port(port).unwrap(), Ok(true));
    }
}

#[test]
fn pool_exhaustion_is_an_error_not_a_hang() {
    let host = PortHost::embedded(Limits {
        pooled_instances: Some(2),
        ..Limits::default()
    })
    .unwrap();
    let _live: Vec<_> = (0..2)
        .map(|_| {
            host.session(NetworkPolicy::LoopbackTcp, Stderr::Capture)
                .unwrap()
        })
        .collect();
    assert!(
        host.session(NetworkPolicy::LoopbackTcp, Stderr::Capture)
            .is_err()
    );
}

#[test]
fn another_build_from_bytes_is_compiled_at_load() {
    let host = PortHost::from_bytes(port_host::COMPONENT, Limits::default()).unwrap();
    assert!(!host.loaded_precompiled());
}
