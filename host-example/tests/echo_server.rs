//! The echo-server example composed with the component: a consumer that
//! serves on the socket its reservation handed over, and whose only imports
//! are WASI.

mod common;

use common::{block, free_block, natively_free};
use port_host::{EchoServer, ErrorCode, NetworkPolicy, echo_component_imports};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

#[test]
fn the_composition_imports_only_wasi() {
    let imports = echo_component_imports().unwrap();
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
    let mut server = EchoServer::start(NetworkPolicy::LoopbackTcp, Some(&ports), true)
        .unwrap()
        .unwrap();
    let port = server.port();
    assert_eq!(port, start);
    assert!(
        !natively_free(port),
        "the taken socket still holds the port"
    );

    let serving = thread::spawn(move || {
        let served = server.serve(Some(2)).unwrap();
        (served, server)
    });
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
    let (served, server) = serving.join().unwrap();
    assert_eq!(served, Ok(()));
    drop(server);
    assert!(natively_free(port));
}

#[test]
fn the_server_cannot_start_without_network() {
    let started = EchoServer::start(NetworkPolicy::Denied, None, false).unwrap();
    assert_eq!(started.err(), Some(ErrorCode::AccessDenied));
}
