//! The echo-server example composed with the component: a consumer that
//! serves on the socket its reservation handed over, and whose only imports
//! are WASI.

use crate::common::echo::{EchoServer, composed};
use crate::common::{block, free_block, natively_free, runtime};
use port_host::{ErrorCode, Limits, NetworkPolicy};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::thread;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Component;

#[test]
fn the_composition_imports_only_wasi() {
    let engine = Engine::default();
    let component = Component::new(&engine, composed()).unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(
        imports
            .iter()
            .any(|name| name.starts_with("wasi:sockets/tcp@"))
    );
    for name in &imports {
        assert!(name.starts_with("wasi:"), "{name} is not WASI");
    }
}

#[test]
fn the_server_echoes_on_the_reserved_port_then_frees_it() {
    let start = free_block(3);
    let ports = block(start, 3);
    let runtime = runtime();
    let mut server = runtime
        .block_on(EchoServer::start(
            NetworkPolicy::loopback(),
            Some(&ports),
            true,
            Limits::default(),
        ))
        .unwrap()
        .unwrap();
    let port = server.port();
    assert_eq!(port, start);
    assert!(
        !natively_free(port),
        "the taken socket still holds the port"
    );

    let clients = thread::spawn(move || {
        for message in ["first", "second"] {
            let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            client.write_all(message.as_bytes()).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            let mut echoed = String::new();
            client.read_to_string(&mut echoed).unwrap();
            assert_eq!(echoed, message);
        }
    });
    let served = runtime.block_on(server.serve(Some(2))).unwrap();
    clients.join().unwrap();
    assert_eq!(served, Ok(()));
    drop(server);
    assert!(natively_free(port));
}

#[test]
fn the_server_cannot_start_without_network() {
    let started = runtime()
        .block_on(EchoServer::start(
            NetworkPolicy::denied(),
            None,
            false,
            Limits::default(),
        ))
        .unwrap();
    assert_eq!(started.err(), Some(ErrorCode::AccessDenied));
}
