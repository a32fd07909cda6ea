//! The network a guest gets, as data: loopback TCP at most, narrowed per
//! tenant, or the port server's wildcard binds on its pool and nothing else.
//! Any embedder applies it to its own `WasiCtxBuilder`.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// What a store's guest may do on the network.
///
/// Never more than TCP on 127.0.0.0/8 and ::1: no UDP, no name lookup, no
/// other address, whatever the builder calls. [`NetworkPolicy::loopback`]
/// grants bind, listen and accept, which is all the port component needs;
/// `connect` and a [`PortBlock`] are chosen per tenant. The one exception is
/// [`NetworkPolicy::wildcard_binds`], the port server's check: TCP and UDP
/// binds on `0.0.0.0` and `[::]`, on its pool's ports, and nothing else.
///
/// ```
/// use port_host::{NetworkPolicy, PortBlock};
///
/// let block = PortBlock::new(20_000..20_100).unwrap();
/// let tenant = NetworkPolicy::loopback().confined_to(block);
/// let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
/// tenant.apply(&mut wasi);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicy {
    tcp: bool,
    connect: bool,
    block: Option<PortBlock>,
    /// Wildcard binds (TCP and UDP) instead of loopback TCP.
    wildcard: bool,
    /// Beside loopback TCP, TCP binds (never a listen) on the wildcard
    /// addresses: the component's probes where the OS needs them.
    wildcard_probes: bool,
}

/// Whether this OS lets a loopback bind succeed beside the same user's
/// wildcard holder (see `docs/platforms.md`): BSD's rules with the
/// SO_REUSEADDR wasmtime-wasi sets (macOS and the BSDs), and Windows' rules
/// for a specific bind beside a wildcard one. Linux refuses that bind, and
/// there a wildcard probe would only add holders on other interfaces, which
/// hbutils' localhost check does not see.
const OS_NEEDS_WILDCARD_PROBES: bool = cfg!(any(
    windows,
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
));

/// A tenant's own ports, `start..end` (end exclusive, at most 65536), none of
/// them 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBlock {
    start: u32,
    end: u32,
}

/// Why a [`PortBlock`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBlock(pub Range<u32>);

impl fmt::Display for BadBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Range { start, end } = self.0;
        write!(
            f,
            "the port block {start}..{end} holds no port (1 to 65535)"
        )
    }
}

impl std::error::Error for BadBlock {}

impl PortBlock {
    /// `ports`, unless it holds no port from 1 to 65535.
    pub fn new(ports: Range<u32>) -> Result<Self, BadBlock> {
        // Port 0 asks the OS for any port, which is exactly what a block rules out.
        let start = ports.start.max(1);
        if start >= ports.end || ports.end > 1 << 16 {
            return Err(BadBlock(ports));
        }
        Ok(PortBlock {
            start,
            end: ports.end,
        })
    }

    /// Whether `port` lies in the block.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..self.end).contains(&u32::from(port))
    }

    /// The ports, as a range (end exclusive).
    pub fn ports(&self) -> Range<u32> {
        self.start..self.end
    }
}

impl NetworkPolicy {
    /// Bind, listen and accept on loopback TCP, any port; no `connect`. On
    /// macOS, the BSDs and Windows also the component's wildcard probes (see
    /// [`NetworkPolicy::with_wildcard_probes`]).
    pub const fn loopback() -> Self {
        NetworkPolicy {
            tcp: true,
            connect: false,
            block: None,
            wildcard: false,
            wildcard_probes: OS_NEEDS_WILDCARD_PROBES,
        }
    }

    /// Grants (or withholds) TCP binds on `0.0.0.0` and `[::]`, on the ports
    /// the policy admits (never port 0), and never a listen, accept or
    /// connect on them: what the component needs where a loopback bind alone
    /// does not see a wildcard listener of the same user (macOS, the BSDs,
    /// Windows, where [`NetworkPolicy::loopback`] grants it). With it, the
    /// check also binds the wildcard addresses, and a reservation keeps a
    /// socket bound (never listening) on each. Where it is withheld, the
    /// component's first wildcard bind is refused and it asks no more.
    ///
    /// A guest under it can learn whether a port is bound on a wildcard
    /// address and keep it bound while its store lives; it cannot serve or
    /// reach anything there.
    pub const fn with_wildcard_probes(mut self, granted: bool) -> Self {
        self.wildcard_probes = granted;
        self
    }

    /// The port server's check (`is-free-on-wildcard`) on `pool`'s ports and
    /// nothing more: TCP bind and listen and UDP bind on `0.0.0.0` and `[::]`,
    /// never on another address, never port 0 or a port outside `pool`; no
    /// accept, connect, send or receive. [`NetworkPolicy::with_connect`]
    /// adds nothing to it, and [`NetworkPolicy::confined_to`] replaces the pool.
    ///
    /// A guest under it can learn which of the pool's ports are in use and
    /// hold them for as long as its store lives; it cannot reach anything.
    pub const fn wildcard_binds(pool: PortBlock) -> Self {
        NetworkPolicy {
            tcp: true,
            connect: false,
            block: Some(pool),
            wildcard: true,
            wildcard_probes: false,
        }
    }

    /// No sockets at all; every `wasi:sockets` call is refused with `access-denied`.
    pub const fn denied() -> Self {
        NetworkPolicy {
            tcp: false,
            connect: false,
            block: None,
            wildcard: false,
            wildcard_probes: false,
        }
    }

    /// Also lets the guest connect to loopback listeners (to ports in its
    /// block, when it has one). Our component never connects; a guest that
    /// may can reach every local service the block admits.
    pub const fn with_connect(mut self) -> Self {
        self.connect = true;
        self
    }

    /// Refuses every bind, listen and connect outside `block`, the port-0
    /// bind (the OS's choice would escape the block) included.
    pub const fn confined_to(mut self, block: PortBlock) -> Self {
        self.block = Some(block);
        self
    }

    /// Sockets one held port takes in the guest's store: its listener, and
    /// where the wildcard probes are granted a guard on each wildcard
    /// address. A host sizing a store's quota for `n` reservations needs
    /// `n` times this, plus the component's own few.
    pub fn sockets_per_reservation(&self) -> usize {
        if self.tcp && !self.wildcard && self.wildcard_probes {
            3
        } else {
            1
        }
    }

    /// The block the guest is confined to, if any.
    pub fn block(&self) -> Option<PortBlock> {
        self.block
    }

    /// Whether the guest may use `addr` for `use_`: the check wasmtime-wasi
    /// makes before each socket operation.
    pub fn permits(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let in_block = |port: u16| self.block.is_none_or(|block| block.contains(port));
        if self.wildcard {
            // A wildcard policy always has a block, so port 0 (outside every
            // block) is refused with the rest of the ports outside the pool.
            let bind = matches!(
                use_,
                SocketAddrUse::TcpBind | SocketAddrUse::TcpListen | SocketAddrUse::UdpBind
            );
            return bind && addr.ip().is_unspecified() && in_block(addr.port());
        }
        let loopback = addr.ip().is_loopback();
        match use_ {
            SocketAddrUse::TcpBind => {
                let port_ok = in_block(addr.port());
                // wasmtime-wasi asks for exactly this before a connect on an
                // unbound socket: the OS's ephemeral bind. Such a socket can
                // only connect to loopback (checked next) and a listen on it
                // is checked against the wildcard address and refused.
                let implicit_for_connect =
                    self.connect && self.block.is_none() && addr.ip().is_unspecified();
                // A probe's or a guard's bind, never port 0: a listen on
                // such a socket is checked against its wildcard address
                // and refused below.
                let probe = self.wildcard_probes
                    && addr.ip().is_unspecified()
                    && addr.port() != 0
                    && port_ok;
                self.tcp
                    && ((loopback && port_ok)
                        || probe
                        || (implicit_for_connect && addr.port() == 0))
            }
            SocketAddrUse::TcpListen => self.tcp && loopback && in_block(addr.port()),
            // The peer's port is its own ephemeral one, not the tenant's.
            SocketAddrUse::TcpAccept => self.tcp && loopback,
            SocketAddrUse::TcpConnect => {
                self.tcp && self.connect && loopback && in_block(addr.port())
            }
            SocketAddrUse::UdpBind | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => false,
        }
    }

    /// Grants this policy to the guest of `wasi`, replacing any earlier
    /// network grant on it.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        // Stated even where they are wasmtime's defaults, so that the grant
        // reads in full here and survives a change of defaults.
        // wasmtime-wasi refuses every UDP socket unless UDP is allowed, before
        // the address check; only the wildcard policy's check binds UDP.
        wasi.allow_udp(self.wildcard)
            .allow_ip_name_lookup(false)
            .allow_tcp(self.tcp);
        let policy = *self;
        wasi.socket_addr_check(move |addr, use_| {
            Box::pin(std::future::ready(policy.permits(addr, use_)))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TCP: [SocketAddrUse; 4] = [
        SocketAddrUse::TcpBind,
        SocketAddrUse::TcpListen,
        SocketAddrUse::TcpAccept,
        SocketAddrUse::TcpConnect,
    ];
    const UDP: [SocketAddrUse; 3] = [
        SocketAddrUse::UdpBind,
        SocketAddrUse::UdpSend,
        SocketAddrUse::UdpReceive,
    ];
    const SERVING: [SocketAddrUse; 3] = [
        SocketAddrUse::TcpBind,
        SocketAddrUse::TcpListen,
        SocketAddrUse::TcpAccept,
    ];

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn block(ports: Range<u32>) -> PortBlock {
        PortBlock::new(ports).unwrap()
    }

    #[test]
    fn loopback_grants_bind_listen_and_accept_but_not_connect() {
        let policy = NetworkPolicy::loopback();
        for a in [
            "127.0.0.1:8000",
            "127.0.0.1:0",
            "127.1.2.3:9000",
            "[::1]:8000",
            "[::1]:0",
        ] {
            for use_ in SERVING {
                assert!(policy.permits(addr(a), use_), "{a} {use_:?}");
            }
            assert!(!policy.permits(addr(a), SocketAddrUse::TcpConnect), "{a}");
        }
    }

    #[test]
    fn connect_is_granted_only_when_asked_for() {
        let policy = NetworkPolicy::loopback().with_connect();
        assert!(policy.permits(addr("127.0.0.1:5432"), SocketAddrUse::TcpConnect));
        assert!(policy.permits(addr("[::1]:5432"), SocketAddrUse::TcpConnect));
        assert!(!policy.permits(addr("10.0.0.1:5432"), SocketAddrUse::TcpConnect));
    }

    #[test]
    fn non_loopback_tcp_is_refused_for_every_use() {
        let policies = [
            NetworkPolicy::loopback(),
            NetworkPolicy::loopback().with_connect(),
        ];
        for policy in policies {
            for a in [
                "192.168.1.10:8000",
                "10.0.0.1:0",
                "8.8.8.8:53",
                "[2001:db8::1]:80",
                "[fe80::1]:0",
            ] {
                for use_ in TCP {
                    assert!(!policy.permits(addr(a), use_), "{a} {use_:?}");
                }
            }
        }
    }

    #[test]
    fn ipv4_mapped_loopback_is_refused() {
        // wasmtime makes IPv6 sockets v6-only, so a mapped address names no
        // loopback socket this guest could have; refuse rather than reason.
        let mapped = SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), 8000);
        for use_ in TCP {
            assert!(
                !NetworkPolicy::loopback()
                    .with_connect()
                    .permits(mapped, use_),
                "{use_:?}"
            );
        }
    }

    #[test]
    fn wildcard_is_admitted_only_for_a_connects_ephemeral_bind() {
        // Without the wildcard probes, which grant binds on the admitted
        // ports there (and are the default on macOS and Windows; tested
        // below).
        let connecting = NetworkPolicy::loopback()
            .with_wildcard_probes(false)
            .with_connect();
        for ip in [Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()] {
            let any = SocketAddr::new(ip, 0);
            assert!(connecting.permits(any, SocketAddrUse::TcpBind));
            assert!(!NetworkPolicy::loopback().permits(any, SocketAddrUse::TcpBind));
            assert!(!connecting.permits(SocketAddr::new(ip, 8000), SocketAddrUse::TcpBind));
            for use_ in [
                SocketAddrUse::TcpListen,
                SocketAddrUse::TcpAccept,
                SocketAddrUse::TcpConnect,
            ] {
                assert!(!connecting.permits(any, use_), "{ip} {use_:?}");
            }
        }
    }

    #[test]
    fn a_block_refuses_every_port_outside_it_and_port_zero() {
        let policy = NetworkPolicy::loopback()
            .with_connect()
            .confined_to(block(20_000..20_100));
        for inside in ["127.0.0.1:20000", "127.0.0.1:20099", "[::1]:20050"] {
            for use_ in TCP {
                assert!(policy.permits(addr(inside), use_), "{inside} {use_:?}");
            }
        }
        for outside in [
            "127.0.0.1:19999",
            "127.0.0.1:20100",
            "127.0.0.1:0",
            "[::1]:0",
            "0.0.0.0:0",
        ] {
            for use_ in [
                SocketAddrUse::TcpBind,
                SocketAddrUse::TcpListen,
                SocketAddrUse::TcpConnect,
            ] {
                assert!(!policy.permits(addr(outside), use_), "{outside} {use_:?}");
            }
        }
    }

    #[test]
    fn wildcard_probes_grant_binds_on_the_wildcards_and_never_a_listen_there() {
        let probes = NetworkPolicy::loopback()
            .with_wildcard_probes(true)
            .confined_to(block(20_000..20_100));
        for a in ["0.0.0.0:20000", "[::]:20099"] {
            assert!(probes.permits(addr(a), SocketAddrUse::TcpBind), "{a}");
            for use_ in [
                SocketAddrUse::TcpListen,
                SocketAddrUse::TcpAccept,
                SocketAddrUse::TcpConnect,
            ]
            .into_iter()
            .chain(UDP)
            {
                assert!(!probes.permits(addr(a), use_), "{a} {use_:?}");
            }
        }
        // Never port 0, never outside the block, never another address.
        for a in ["0.0.0.0:0", "[::]:0", "0.0.0.0:20100", "192.168.1.5:20000"] {
            assert!(!probes.permits(addr(a), SocketAddrUse::TcpBind), "{a}");
        }
        let withheld = NetworkPolicy::loopback().with_wildcard_probes(false);
        assert!(!withheld.permits(addr("0.0.0.0:8000"), SocketAddrUse::TcpBind));
        assert_eq!(
            NetworkPolicy::loopback(),
            withheld.with_wildcard_probes(super::OS_NEEDS_WILDCARD_PROBES)
        );
        assert_eq!(cfg!(target_os = "linux"), !super::OS_NEEDS_WILDCARD_PROBES);
    }

    #[test]
    fn denied_refuses_everything() {
        for a in ["127.0.0.1:8000", "[::1]:0", "0.0.0.0:0"] {
            for use_ in TCP.into_iter().chain(UDP) {
                assert!(!NetworkPolicy::denied().permits(addr(a), use_), "{a}");
            }
        }
    }

    #[test]
    fn udp_is_refused_even_on_loopback() {
        let policy = NetworkPolicy::loopback().with_connect();
        for a in ["127.0.0.1:5353", "[::1]:0", "0.0.0.0:0"] {
            for use_ in UDP {
                assert!(!policy.permits(addr(a), use_), "{a} {use_:?}");
            }
        }
    }

    #[test]
    fn wildcard_binds_grant_tcp_and_udp_binds_on_the_pool_and_nothing_else() {
        let policy = NetworkPolicy::wildcard_binds(block(20_000..20_100)).with_connect();
        for a in ["0.0.0.0:20000", "[::]:20099"] {
            for use_ in [
                SocketAddrUse::TcpBind,
                SocketAddrUse::TcpListen,
                SocketAddrUse::UdpBind,
            ] {
                assert!(policy.permits(addr(a), use_), "{a} {use_:?}");
            }
            for use_ in [
                SocketAddrUse::TcpAccept,
                SocketAddrUse::TcpConnect,
                SocketAddrUse::UdpSend,
                SocketAddrUse::UdpReceive,
            ] {
                assert!(!policy.permits(addr(a), use_), "{a} {use_:?}");
            }
        }
        for a in [
            "0.0.0.0:0",
            "[::]:0",
            "0.0.0.0:19999",
            "[::]:20100",
            "127.0.0.1:20000",
            "[::1]:20000",
            "192.168.1.10:20000",
        ] {
            for use_ in TCP.into_iter().chain(UDP) {
                assert!(!policy.permits(addr(a), use_), "{a} {use_:?}");
            }
        }
    }

    #[test]
    fn a_block_without_a_usable_port_is_refused() {
        assert!(PortBlock::new(20_000..20_000).is_err());
        assert!(PortBlock::new(0..1).is_err());
        assert!(PortBlock::new(60_000..65_537).is_err());
        assert_eq!(PortBlock::new(0..3).unwrap().ports(), 1..3);
        assert!(PortBlock::new(65_535..65_536).unwrap().contains(65_535));
        assert_eq!(
            PortBlock::new(9..9).unwrap_err().to_string(),
            "the port block 9..9 holds no port (1 to 65535)"
        );
    }
}
