//! The bindings wasmtime generates from `wit/port.wit`: the typed calls every
//! session makes, and what an embedder with its own store data uses.
//!
//! One `bindgen!`, with `call_async`: a [`Session`](crate::Session) makes the
//! same calls and blocks on them. There is no second, blocking invocation on
//! purpose: wasmtime 48's `bindgen!` remaps only imported interfaces through
//! `with:`, so a second one would define every type of the exported
//! `hbutils:network/port` (`Candidates`, `ErrorCode`, …) again, as types of
//! their own.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "wit",
    world: "port-utils",
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
    // The socket a reservation hands over is wasmtime-wasi's own
    // `TcpSocket`, living in the store's resource table like any socket the
    // guest made.
    with: { "wasi": wasmtime_wasi::p2::bindings },
    require_store_data_send: true,
});
