//! Models of how Linux, BSD (XNU, macOS's kernel) and Windows decide a TCP
//! bind and a listen on one port, written from their sources, for testing
//! hbutils-port's freeness decisions on systems these machines do not run.
//!
//! Each model is a table of sockets on one port and the rule its kernel
//! applies when another socket binds or listens there:
//!
//! - **Linux** (`net/ipv4/inet_connection_sock.c`, `inet_bind_conflict`,
//!   called again from `inet_csk_listen_start`): two sockets conflict when
//!   their addresses overlap (equal, or either is the wildcard), unless both
//!   set SO_REUSEADDR and the other is not listening. Users do not matter
//!   without SO_REUSEPORT. The check runs at bind and again at listen.
//! - **BSD / XNU** (`bsd/netinet/in_pcb.c`, `in_pcbbind`; `in6_pcbbind`): a
//!   non-root user's bind fails when another user's socket overlaps it
//!   (wildcard lookup). Then a lookup of the same address: exact only when
//!   the new socket sets SO_REUSEADDR, overlapping otherwise; a match fails
//!   the bind. Listen checks nothing.
//! - **Windows** (Microsoft's "Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE"):
//!   a socket with SO_EXCLUSIVEADDRUSE, existing or new, fails every
//!   overlapping bind; another account's overlapping socket fails it with
//!   WSAEACCES (enhanced socket security); the same account's socket fails
//!   it only on the exact address, unless the new socket sets SO_REUSEADDR
//!   (which then binds over it). Listen checks nothing.
//!
//! Addresses are per family: loopback, the wildcard, or one other local
//! address (a LAN interface). An IPv6 wildcard socket that is not v6-only is
//! dual-stack: it also stands on the IPv4 wildcard. One port only: sockets
//! on other ports never meet.

/// Whose kernel decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Bsd,
    Windows,
}

impl Os {
    pub const ALL: [Os; 3] = [Os::Linux, Os::Bsd, Os::Windows];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    Loopback,
    Wildcard,
    /// Another local address: a LAN interface's.
    Other,
}

/// The socket options a bind is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub reuse_addr: bool,
    /// Windows' SO_EXCLUSIVEADDRUSE.
    pub exclusive: bool,
    /// IPV6_V6ONLY, for an IPv6 socket.
    pub v6_only: bool,
}

/// Why a bind or listen failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// EADDRINUSE / WSAEADDRINUSE
    AddrInUse,
    /// WSAEACCES
    Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Socket {
    family: Family,
    addr: Addr,
    options: Options,
    user: u32,
    listening: bool,
}

impl Socket {
    /// Whether the socket stands on `addr` of `family`, exactly.
    fn stands_on(&self, family: Family, addr: Addr) -> bool {
        (self.family == family && self.addr == addr)
            || (family == Family::V4 && addr == Addr::Wildcard && self.dual_stack())
    }

    fn dual_stack(&self) -> bool {
        self.family == Family::V6 && self.addr == Addr::Wildcard && !self.options.v6_only
    }

    /// The IPv4 address the socket covers, if any.
    fn v4_view(&self) -> Option<Addr> {
        match self.family {
            Family::V4 => Some(self.addr),
            Family::V6 if self.dual_stack() => Some(Addr::Wildcard),
            Family::V6 => None,
        }
    }

    /// Whether two sockets' addresses meet: equal, or either a wildcard
    /// covering the other.
    fn overlaps(&self, other: &Socket) -> bool {
        let meet = |a: Addr, b: Addr| a == b || a == Addr::Wildcard || b == Addr::Wildcard;
        if self.family == other.family && meet(self.addr, other.addr) {
            return true;
        }
        match (self.v4_view(), other.v4_view()) {
            (Some(a), Some(b)) => meet(a, b),
            _ => false,
        }
    }

    /// Whether two sockets stand on the very same address.
    fn exact(&self, other: &Socket) -> bool {
        if self.family == other.family && self.addr == other.addr {
            return true;
        }
        matches!(
            (self.v4_view(), other.v4_view()),
            (Some(Addr::Wildcard), Some(Addr::Wildcard))
        )
    }
}

/// A socket's handle in a [`Kernel`].
pub type Id = usize;

/// One port's sockets, under one OS's rules.
#[derive(Debug, Clone)]
pub struct Kernel {
    os: Os,
    sockets: Vec<Option<Socket>>,
}

impl Kernel {
    pub fn new(os: Os) -> Kernel {
        Kernel {
            os,
            sockets: Vec::new(),
        }
    }

    pub fn os(&self) -> Os {
        self.os
    }

    fn live(&self) -> impl Iterator<Item = (Id, &Socket)> {
        self.sockets
            .iter()
            .enumerate()
            .filter_map(|(id, socket)| socket.as_ref().map(|socket| (id, socket)))
    }

    /// `user` binds a new socket on `addr` of `family`.
    pub fn bind(
        &mut self,
        user: u32,
        family: Family,
        addr: Addr,
        options: Options,
    ) -> Result<Id, Errno> {
        let new = Socket {
            family,
            addr,
            options,
            user,
            listening: false,
        };
        let refusal = self
            .live()
            .find_map(|(_, old)| self.bind_refusal(&new, old));
        if let Some(errno) = refusal {
            return Err(errno);
        }
        self.sockets.push(Some(new));
        Ok(self.sockets.len() - 1)
    }

    fn bind_refusal(&self, new: &Socket, old: &Socket) -> Option<Errno> {
        let overlap = new.overlaps(old);
        match self.os {
            Os::Linux => (overlap && !linux_may_share(new, old)).then_some(Errno::AddrInUse),
            Os::Bsd => {
                // User 0 is root, which skips the other-user check.
                let other_user = new.user != 0 && old.user != new.user;
                let same_address = if new.options.reuse_addr {
                    new.exact(old)
                } else {
                    overlap
                };
                ((overlap && other_user) || same_address).then_some(Errno::AddrInUse)
            }
            Os::Windows => {
                if !overlap {
                    None
                } else if old.options.exclusive || new.options.exclusive {
                    Some(Errno::AddrInUse)
                } else if old.user != new.user {
                    Some(Errno::Access)
                } else if new.exact(old) && !new.options.reuse_addr {
                    Some(Errno::AddrInUse)
                } else {
                    None
                }
            }
        }
    }

    /// The socket starts listening.
    pub fn listen(&mut self, id: Id) -> Result<(), Errno> {
        let Some(socket) = self.sockets[id] else {
            panic!("listen on a closed socket");
        };
        if self.os == Os::Linux {
            let refused = self.live().any(|(other, old)| {
                other != id && socket.overlaps(old) && !linux_may_share(&socket, old)
            });
            if refused {
                return Err(Errno::AddrInUse);
            }
        }
        if let Some(socket) = self.sockets[id].as_mut() {
            socket.listening = true;
        }
        Ok(())
    }

    pub fn close(&mut self, id: Id) {
        self.sockets[id] = None;
    }

    /// Whether anyone listens where a connection to `family`'s loopback
    /// address would arrive: what hbutils' `connect` to localhost sees.
    pub fn connect_reaches(&self, family: Family) -> bool {
        self.live().any(|(_, s)| {
            s.listening
                && (s.stands_on(family, Addr::Loopback) || s.stands_on(family, Addr::Wildcard))
        })
    }
}

/// Linux's one exception: both sockets set SO_REUSEADDR and the one already
/// there is not listening.
fn linux_may_share(new: &Socket, old: &Socket) -> bool {
    new.options.reuse_addr && old.options.reuse_addr && !old.listening
}

#[cfg(test)]
mod tests {
    use super::*;

    const REUSE: Options = Options {
        reuse_addr: true,
        exclusive: false,
        v6_only: true,
    };
    const PLAIN: Options = Options {
        reuse_addr: false,
        exclusive: false,
        v6_only: true,
    };

    #[test]
    fn linux_refuses_a_loopback_bind_beside_a_wildcard_listener_even_with_reuseaddr() {
        let mut k = Kernel::new(Os::Linux);
        let server = k.bind(1, Family::V4, Addr::Wildcard, REUSE).unwrap();
        // Both bound, neither listening: SO_REUSEADDR lets them share.
        let probe = k.bind(1, Family::V4, Addr::Loopback, REUSE).unwrap();
        k.close(probe);
        k.listen(server).unwrap();
        assert_eq!(
            k.bind(1, Family::V4, Addr::Loopback, REUSE),
            Err(Errno::AddrInUse)
        );
    }

    #[test]
    fn xnu_lets_the_same_user_bind_loopback_beside_a_wildcard_listener_with_reuseaddr() {
        let mut k = Kernel::new(Os::Bsd);
        let server = k.bind(501, Family::V4, Addr::Wildcard, REUSE).unwrap();
        k.listen(server).unwrap();
        assert!(k.bind(501, Family::V4, Addr::Loopback, REUSE).is_ok());
        assert_eq!(
            k.bind(501, Family::V4, Addr::Wildcard, REUSE),
            Err(Errno::AddrInUse)
        );
        // Another user is refused anywhere on the port.
        assert_eq!(
            k.bind(502, Family::V4, Addr::Loopback, REUSE),
            Err(Errno::AddrInUse)
        );
        // Without SO_REUSEADDR the overlap alone refuses it.
        assert_eq!(
            k.bind(501, Family::V4, Addr::Loopback, PLAIN),
            Err(Errno::AddrInUse)
        );
    }

    #[test]
    fn windows_lets_the_same_user_bind_specific_beside_wildcard_and_refuses_the_exact_one() {
        let mut k = Kernel::new(Os::Windows);
        let server = k.bind(7, Family::V4, Addr::Wildcard, PLAIN).unwrap();
        k.listen(server).unwrap();
        assert!(k.bind(7, Family::V4, Addr::Loopback, PLAIN).is_ok());
        assert_eq!(
            k.bind(7, Family::V4, Addr::Wildcard, PLAIN),
            Err(Errno::AddrInUse)
        );
        assert_eq!(
            k.bind(8, Family::V4, Addr::Loopback, PLAIN),
            Err(Errno::Access)
        );
        // SO_REUSEADDR binds over the same user's socket.
        assert!(k.bind(7, Family::V4, Addr::Wildcard, REUSE).is_ok());
    }

    #[test]
    fn a_dual_stack_wildcard_stands_on_the_ipv4_wildcard_too() {
        for os in Os::ALL {
            let mut k = Kernel::new(os);
            let dual = Options {
                v6_only: false,
                ..PLAIN
            };
            let server = k.bind(1, Family::V6, Addr::Wildcard, dual).unwrap();
            k.listen(server).unwrap();
            assert_eq!(
                k.bind(1, Family::V4, Addr::Wildcard, PLAIN),
                Err(Errno::AddrInUse),
                "{os:?}"
            );
            assert!(k.connect_reaches(Family::V4));
        }
    }
}
