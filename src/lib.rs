//! hbutils' `is_free_port` / `get_free_port` as a WebAssembly component.
//!
//! The contract is `wit/port.wit`. On `wasm32` this crate exports it, wiring
//! the pure search logic in [`search`] to the `wasi:sockets` probe; natively it
//! is just the search logic, so the rules are tested without a runtime.

pub mod search;

#[cfg(target_arch = "wasm32")]
mod probe;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::probe::WasiProbe;
    use crate::search;

    wit_bindgen::generate!({ path: "wit", world: "port-utils" });

    use exports::hbutils::network::port::{Candidates, ErrorCode, Guest};

    struct Component;

    impl Guest for Component {
        fn is_free_port(port: u16) -> Result<bool, ErrorCode> {
            search::is_free_port(&mut WasiProbe, port).map_err(to_wit)
        }

        fn get_free_port(ports: Option<Candidates>, strict: bool) -> Result<u16, ErrorCode> {
            let ports = ports.map(|ports| match ports {
                Candidates::Range(r) => search::Candidates::Range {
                    start: r.start,
                    end: r.end,
                    step: r.step,
                },
                Candidates::Explicit(list) => search::Candidates::Explicit(list),
            });
            search::get_free_port(&mut WasiProbe, ports.as_ref(), strict, |warning| {
                // Nothing useful can be done if stderr is closed: the warning
                // is advice, and the answer still stands.
                let _ =
                    wasi::cli::stderr::get_stderr().blocking_write_and_flush(warning.as_bytes());
            })
            .map_err(to_wit)
        }
    }

    fn to_wit(error: search::Error) -> ErrorCode {
        match error {
            search::Error::AccessDenied => ErrorCode::AccessDenied,
            search::Error::NoFreePort(message) => ErrorCode::NoFreePort(message),
            search::Error::InvalidArgument(message) => ErrorCode::InvalidArgument(message),
            search::Error::Other(name) => ErrorCode::Other(name),
        }
    }

    export!(Component);
}
