//! The integration tests, in one binary so that wasmtime is linked once.
//! Each module is named after what it covers; the tests that count the
//! process's descriptors or raise its open-file limit live in binaries of
//! their own (`descriptors.rs`, `many_sockets.rs`).

#[path = "../common/mod.rs"]
mod common;

mod async_api;
mod cli;
mod cli_fuzz;
mod cli_processes;
mod cli_reserve;
mod echo_server;
mod embedding;
mod get_free_port;
mod host_errors;
mod is_free_port;
mod limits;
mod reservations;
mod sandbox;
mod search_property;
mod several_ports;
mod startup;
mod tenants;
mod wildcard_probes;
mod wit_boundary;

/// The port server is Linux-only (/proc names a port's owner, SO_PEERCRED
/// the asker), and so are its tests, which build empty elsewhere.
#[cfg(not(target_os = "linux"))]
#[test]
fn the_port_servers_tests_run_on_linux_only() {
    common::skipped(
        "portserver.rs, portserver_embedded.rs and port_host's portserver unit tests: \
         the port server is Linux-only",
    );
}
