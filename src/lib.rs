//! hbutils' `is_free_port` / `get_free_port` as a WebAssembly component.
//!
//! The contract is `wit/port.wit`. On `wasm32` this crate exports it, wiring
//! the pure search logic in [`search`] and the reservation states in
//! [`reservation`] to the `wasi:sockets` probe; natively it is just that logic,
//! so the rules are tested without a runtime.

pub mod reservation;
pub mod search;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod search_oracle;

#[cfg(target_arch = "wasm32")]
mod probe;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::probe::{self, FamilyStatus, WasiProbe, WasiReserver};
    use crate::{reservation, search};
    use std::cell::RefCell;
    use wasi::sockets::network::IpAddressFamily;
    use wasi::sockets::tcp::TcpSocket;

    wit_bindgen::generate!({
        path: "wit",
        world: "port-utils",
        // The `wasi:sockets` types in the contract are the `wasi` crate's, so
        // the socket a reservation hands over is the one the probe made.
        with: {
            "wasi:sockets/tcp@0.2.12": wasi::sockets::tcp,
            "wasi:sockets/network@0.2.12": wasi::sockets::network,
            "wasi:io/poll@0.2.12": wasi::io::poll,
            "wasi:io/streams@0.2.12": wasi::io::streams,
            "wasi:io/error@0.2.12": wasi::io::error,
            "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
        },
    });

    use exports::hbutils::network::port::{
        self as wit, Candidates, ErrorCode, Guest, GuestReservation, PortStatus, ReservationError,
    };

    struct Component;

    /// A reservation as the guest keeps it. The WIT methods take `&self`, and a
    /// component instance is single-threaded, so a `RefCell` is all it needs.
    struct HeldPort(RefCell<reservation::Reservation<TcpSocket>>);

    impl GuestReservation for HeldPort {
        fn port(&self) -> Result<u16, ReservationError> {
            self.0.borrow().port().map_err(to_wit_ended)
        }

        fn take_socket(&self) -> Result<TcpSocket, ReservationError> {
            let mut held = self.0.borrow_mut();
            let port = held.port().map_err(to_wit_ended)?;
            let socket = held.take_socket().map_err(to_wit_ended)?;
            probe::forget_held(port);
            Ok(socket)
        }

        fn release(&self) -> Result<(), ReservationError> {
            let mut held = self.0.borrow_mut();
            let port = held.port().map_err(to_wit_ended)?;
            drop(held.release().map_err(to_wit_ended)?);
            probe::forget_held(port);
            Ok(())
        }
    }

    impl Drop for HeldPort {
        fn drop(&mut self) {
            // The socket closes with the reservation; only the instance's
            // record of the port is left to clear.
            if let Ok(port) = self.0.get_mut().port() {
                probe::forget_held(port);
            }
        }
    }

    impl Guest for Component {
        type Reservation = HeldPort;

        fn is_free_port(port: u16) -> Result<bool, ErrorCode> {
            search::is_free_port(&mut WasiProbe, port).map_err(to_wit)
        }

        fn get_free_port(ports: Option<Candidates>, strict: bool) -> Result<u16, ErrorCode> {
            let ports = ports.map(from_wit);
            search::get_free_port(&mut WasiProbe, ports.as_ref(), strict, warn).map_err(to_wit)
        }

        fn reserve_port(
            ports: Option<Candidates>,
            strict: bool,
        ) -> Result<wit::Reservation, ErrorCode> {
            let ports = ports.map(from_wit);
            let held = search::first_free(&mut WasiReserver, ports.as_ref(), strict, warn)
                .map_err(to_wit)?;
            Ok(wit::Reservation::new(HeldPort(RefCell::new(held))))
        }

        fn probe_port(port: u16) -> Result<PortStatus, ErrorCode> {
            search::check_port(port).map_err(to_wit)?;
            let status = |family| WasiProbe.family_status(family, port).map(to_wit_status);
            Ok(PortStatus {
                ipv4: status(IpAddressFamily::Ipv4).map_err(to_wit)?,
                ipv6: status(IpAddressFamily::Ipv6).map_err(to_wit)?,
            })
        }
    }

    /// Writes the strict-mode warning to the component's stderr.
    fn warn(warning: &str) {
        // Nothing useful can be done if stderr is closed: the warning is
        // advice, and the answer still stands.
        let _ = wasi::cli::stderr::get_stderr().blocking_write_and_flush(warning.as_bytes());
    }

    fn from_wit(ports: Candidates) -> search::Candidates {
        match ports {
            Candidates::Range(r) => search::Candidates::Range {
                start: r.start,
                end: r.end,
                step: r.step,
            },
            Candidates::Explicit(list) => search::Candidates::Explicit(list),
        }
    }

    fn to_wit_status(status: FamilyStatus) -> wit::FamilyStatus {
        match status {
            FamilyStatus::Free => wit::FamilyStatus::Free,
            FamilyStatus::InUse => wit::FamilyStatus::InUse,
            FamilyStatus::Denied => wit::FamilyStatus::Denied,
            FamilyStatus::Unsupported => wit::FamilyStatus::Unsupported,
        }
    }

    fn to_wit_ended(ended: reservation::Ended) -> ReservationError {
        match ended {
            reservation::Ended::Released => ReservationError::Released,
            reservation::Ended::SocketTaken => ReservationError::SocketTaken,
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
