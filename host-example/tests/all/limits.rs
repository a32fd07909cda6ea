//! One bound per store, whatever the component's shape: memories and tables
//! summed, and explicit caps on instances, memories, tables and elements.
//! Hostile components are written here as WAT.

use crate::common::os::resident_bytes;
use port_host::{Limits, NetworkPolicy, Stderr, StoreBounds};
use wasmtime::component::Component;

/// Instantiates `wat` in a sandboxed store with `limits`; the error's text,
/// and the process's RSS growth (bytes) while that store still lived, where
/// the OS tells RSS.
fn instantiate(wat: &str, bounds: StoreBounds) -> (Result<(), String>, Option<usize>) {
    let engine = port_host::engine(None).unwrap();
    let component = Component::new(&engine, wat).unwrap();
    let linker = port_host::async_linker(&engine).unwrap();
    let (mut store, _) =
        port_host::sandboxed_store(&engine, NetworkPolicy::denied(), Stderr::Capture, &bounds);
    let before = resident_bytes();
    // As a session instantiates: async, so a start function that runs past
    // an epoch tick yields instead of failing.
    let result = wasmtime_wasi::runtime::in_tokio(linker.instantiate_async(&mut store, &component))
        .map(drop)
        .map_err(|error| format!("{error:#}"));
    let grown = resident_bytes()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    drop(store);
    (result, grown)
}

/// `count` core instances of one module, each made by `(core instance ...)`.
fn component_of(module: &str, count: usize) -> String {
    let instances = "(core instance (instantiate $m))\n".repeat(count);
    format!("(component (core module $m {module}) {instances})")
}

/// Each instance grows its memory to 64 MiB and writes every byte of it.
const HOG: &str = r#"
    (memory 1)
    (func $grow
      (if (i32.eq (memory.grow (i32.const 1023)) (i32.const -1)) (then unreachable))
      (memory.fill (i32.const 0) (i32.const 1) (i32.const 67108864)))
    (start $grow)"#;

#[test]
fn many_instances_each_growing_memory_are_refused_at_the_store_total() {
    let bounds = StoreBounds::default();
    let (result, grown) = instantiate(&component_of(HOG, 40), bounds);
    let error = result.unwrap_err();
    assert!(error.contains("64 MiB memory limit"), "{error}");
    // Forty instances under a per-memory bound would have taken 2.5 GiB.
    let Some(grown) = grown else {
        return crate::common::skipped(
            "many_instances_each_growing_memory: RSS unknown on this OS (Linux's VmRSS)",
        );
    };
    assert!(
        grown < bounds.memory_bytes + (64 << 20),
        "RSS grew by {} MiB",
        grown >> 20
    );
}

#[test]
fn a_table_over_the_element_cap_is_refused() {
    let (result, _) = instantiate(
        &component_of("(table 100000 funcref)", 1),
        StoreBounds::default(),
    );
    let error = result.unwrap_err();
    assert!(error.contains("table elements"), "{error}");
}

#[test]
fn tables_over_the_store_cap_are_refused() {
    let tables = "(table 1 funcref)".repeat(21);
    let (result, _) = instantiate(&component_of(&tables, 1), StoreBounds::default());
    let error = result.unwrap_err();
    assert!(error.contains("table"), "{error}");
}

#[test]
fn instances_over_the_store_cap_are_refused() {
    let (result, _) = instantiate(&component_of("", 21), StoreBounds::default());
    let error = result.unwrap_err();
    assert!(error.contains("instance"), "{error}");
}

#[test]
fn memories_over_the_store_cap_are_refused() {
    let (result, _) = instantiate(&component_of("(memory 1)", 5), StoreBounds::default());
    let error = result.unwrap_err();
    assert!(error.contains("memor"), "{error}");
}

#[test]
fn the_port_component_runs_within_a_fraction_of_the_default_limits() {
    let limits = Limits::default().with_store(
        StoreBounds::default()
            .with_memory_bytes(2 << 20)
            // The component's tables hold 101 elements (83 in its main
            // module, 18 in the adapter shims): 128 leaves it some room.
            .with_table_elements(128)
            .with_instances(4)
            .with_memories(1)
            .with_tables(4)
            .with_resources(16),
    );
    let host = port_host::PortHost::embedded(limits).unwrap();
    let mut session = host
        .session(NetworkPolicy::loopback(), Stderr::Capture)
        .unwrap();
    let start = crate::common::free_block(3);
    let ports = crate::common::block(start, 3);
    assert_eq!(session.is_free_port(start).unwrap(), Ok(true));
    let held: Vec<_> = (0..3)
        .map(|_| session.reserve_port(Some(&ports), true).unwrap().unwrap())
        .collect();
    let message = format!(
        "No free port can be allocated within range({start}, {})",
        start + 3
    );
    assert_eq!(
        session.get_free_port(Some(&ports), true).unwrap(),
        Err(port_host::ErrorCode::NoFreePort(message))
    );
    drop(held);
}
