//! hbutils' `is_free_port` / `get_free_port` as a WebAssembly component.
//!
//! The contract is `wit/port.wit`. On `wasm32` this crate exports it, wiring
//! the pure search logic in [`search`] and the reservation states in
//! [`reservation`] to the `wasi:sockets` probe; natively it is just that logic,
//! so the rules are tested without a runtime.

pub mod freeness;
pub mod reservation;
pub mod search;

#[cfg(target_arch = "wasm32")]
mod probe;
#[cfg(target_arch = "wasm32")]
mod wildcard;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::probe::{FamilyStatus, Listener, WasiProbe, WasiReserver};
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
    /// The listener forgets its port as it goes, however the reservation ends.
    struct HeldPort(RefCell<reservation::Reservation<Listener>>);

    thread_local! {
        /// Where this instance's next reservation starts its walk.
        static NEXT_FIT: RefCell<search::NextFit> = RefCell::default();
    }

    impl GuestReservation for HeldPort {
        fn port(&self) -> Result<u16, ReservationError> {
            self.0.borrow().port().map_err(to_wit_ended)
        }

        fn take_socket(&self) -> Result<TcpSocket, ReservationError> {
            let listener = self.0.borrow_mut().take_socket().map_err(to_wit_ended)?;
            Ok(listener.into_socket())
        }

        fn release(&self) -> Result<(), ReservationError> {
            drop(self.0.borrow_mut().release().map_err(to_wit_ended)?);
            Ok(())
        }
    }

    /// `count` ports held, continuing where this instance's last reservation
    /// over the same candidates stopped.
    fn reserve(
        ports: Option<Candidates>,
        count: u32,
        strict: bool,
    ) -> Result<Vec<Listener>, ErrorCode> {
        let ports = ports.map(from_wit);
        NEXT_FIT
            .with_borrow_mut(|next_fit| {
                next_fit.take(
                    &mut WasiReserver::default(),
                    ports.as_ref(),
                    count,
                    strict,
                    warn,
                )
            })
            .map_err(to_wit)
    }

    fn to_wit_reservation(listener: Listener) -> wit::Reservation {
        let held = reservation::Reservation::new(listener.port(), listener);
        wit::Reservation::new(HeldPort(RefCell::new(held)))
    }

    impl Guest for Component {
        type Reservation = HeldPort;

        fn is_free_port(port: u16) -> Result<bool, ErrorCode> {
            search::is_free_port(&mut WasiProbe::default(), port).map_err(to_wit)
        }

        fn get_free_port(ports: Option<Candidates>, strict: bool) -> Result<u16, ErrorCode> {
            let ports = ports.map(from_wit);
            search::get_free_port(&mut WasiProbe::default(), ports.as_ref(), strict, warn)
                .map_err(to_wit)
        }

        fn reserve_port(
            ports: Option<Candidates>,
            strict: bool,
        ) -> Result<wit::Reservation, ErrorCode> {
            let mut held = reserve(ports, 1, strict)?;
            // One was asked for, and an `Ok` holds all that were asked for.
            Ok(to_wit_reservation(held.swap_remove(0)))
        }

        fn get_free_ports(
            ports: Option<Candidates>,
            count: u32,
            strict: bool,
        ) -> Result<Vec<u16>, ErrorCode> {
            let ports = ports.map(from_wit);
            let mut probe = WasiProbe::default();
            search::get_free_ports(&mut probe, ports.as_ref(), count, strict, warn).map_err(to_wit)
        }

        fn reserve_ports(
            ports: Option<Candidates>,
            count: u32,
            strict: bool,
        ) -> Result<Vec<wit::Reservation>, ErrorCode> {
            let held = reserve(ports, count, strict)?;
            Ok(held.into_iter().map(to_wit_reservation).collect())
        }

        fn probe_port(port: u16) -> Result<PortStatus, ErrorCode> {
            search::check_port(port).map_err(to_wit)?;
            let mut probe = WasiProbe::default();
            let mut status = |family| probe.family_status(family, port).map(to_wit_status);
            Ok(PortStatus {
                ipv4: status(IpAddressFamily::Ipv4).map_err(to_wit)?,
                ipv6: status(IpAddressFamily::Ipv6).map_err(to_wit)?,
            })
        }

        fn is_free_on_wildcard(port: u16) -> Result<bool, ErrorCode> {
            search::check_port(port).map_err(to_wit)?;
            crate::wildcard::is_free_on_wildcard(port).map_err(to_wit)
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
