//! A reservation's life, as plain Rust: it holds a socket until the socket is
//! taken or released, and afterwards every use says which of the two ended it.
//!
//! The component wraps this around a `wasi:sockets` socket; natively it is
//! tested with any value standing in for the socket.

/// Why a reservation no longer holds its port; mirrors the WIT
/// `reservation-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Released,
    SocketTaken,
}

/// A held port and the socket holding it.
#[derive(Debug)]
pub struct Reservation<S> {
    port: u16,
    state: Result<S, Ended>,
}

impl<S> Reservation<S> {
    pub fn new(port: u16, socket: S) -> Self {
        Reservation {
            port,
            state: Ok(socket),
        }
    }

    /// The port, while it is held.
    pub fn port(&self) -> Result<u16, Ended> {
        self.state
            .as_ref()
            .map(|_| self.port)
            .map_err(|&ended| ended)
    }

    /// The socket, for the caller to keep; the reservation ends.
    pub fn take_socket(&mut self) -> Result<S, Ended> {
        self.end(Ended::SocketTaken)
    }

    /// The socket, for the caller to close; the reservation ends.
    pub fn release(&mut self) -> Result<S, Ended> {
        self.end(Ended::Released)
    }

    fn end(&mut self, why: Ended) -> Result<S, Ended> {
        match self.state {
            // The first ending stays the one reported.
            Err(ended) => Err(ended),
            Ok(_) => std::mem::replace(&mut self.state, Err(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_reservation_names_its_port() {
        let reservation = Reservation::new(8080, "socket");
        assert_eq!(reservation.port(), Ok(8080));
    }

    #[test]
    fn taking_the_socket_hands_it_over_once() {
        let mut reservation = Reservation::new(8080, "socket");
        assert_eq!(reservation.take_socket(), Ok("socket"));
        assert_eq!(reservation.port(), Err(Ended::SocketTaken));
        assert_eq!(reservation.take_socket(), Err(Ended::SocketTaken));
        assert_eq!(reservation.release(), Err(Ended::SocketTaken));
    }

    #[test]
    fn releasing_gives_the_socket_up_once() {
        let mut reservation = Reservation::new(8080, "socket");
        assert_eq!(reservation.release(), Ok("socket"));
        assert_eq!(reservation.release(), Err(Ended::Released));
        assert_eq!(reservation.port(), Err(Ended::Released));
        assert_eq!(reservation.take_socket(), Err(Ended::Released));
    }
}
