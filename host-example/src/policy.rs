//! The network a guest gets: loopback TCP and nothing else, or nothing at all.

use std::net::SocketAddr;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// What a store's guest may do on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// TCP on 127.0.0.0/8 and ::1 only: no UDP, no name lookup, no other address.
    LoopbackTcp,
    /// No sockets at all; every `wasi:sockets` call is refused with `access-denied`.
    Denied,
}

impl NetworkPolicy {
    pub(crate) fn apply(self, wasi: &mut WasiCtxBuilder) {
        // Stated even where they are wasmtime's defaults, so that the grant
        // reads in full here and survives a change of defaults.
        wasi.allow_udp(false).allow_ip_name_lookup(false);
        match self {
            NetworkPolicy::Denied => {
                wasi.allow_tcp(false);
            }
            NetworkPolicy::LoopbackTcp => {
                wasi.allow_tcp(true).socket_addr_check(|addr, use_| {
                    Box::pin(std::future::ready(loopback_tcp(addr, use_)))
                });
            }
        }
    }
}

/// The address check behind [`NetworkPolicy::LoopbackTcp`].
///
/// The one non-loopback address admitted is the wildcard with port 0 for a
/// bind: wasmtime-wasi asks exactly that before a `connect` on an unbound
/// socket, for the ephemeral bind the OS is about to do. It is harmless: such a
/// socket can only connect to loopback (checked next), and a `listen` on it is
/// checked against the real wildcard address and refused.
pub fn loopback_tcp(addr: SocketAddr, use_: SocketAddrUse) -> bool {
    match use_ {
        SocketAddrUse::TcpBind => {
            addr.ip().is_loopback() || (addr.ip().is_unspecified() && addr.port() == 0)
        }
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept | SocketAddrUse::TcpConnect => {
            addr.ip().is_loopback()
        }
        SocketAddrUse::UdpBind | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => false,
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

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_tcp_is_admitted_for_every_use() {
        for a in [
            "127.0.0.1:8000",
            "127.0.0.1:0",
            "127.1.2.3:9000",
            "[::1]:8000",
            "[::1]:0",
        ] {
            for use_ in TCP {
                assert!(loopback_tcp(addr(a), use_), "{a} {use_:?}");
            }
        }
    }

    #[test]
    fn non_loopback_tcp_is_refused_for_every_use() {
        for a in [
            "192.168.1.10:8000",
            "10.0.0.1:0",
            "8.8.8.8:53",
            "[2001:db8::1]:80",
            "[fe80::1]:0",
        ] {
            for use_ in TCP {
                assert!(!loopback_tcp(addr(a), use_), "{a} {use_:?}");
            }
        }
    }

    #[test]
    fn ipv4_mapped_loopback_is_refused() {
        // wasmtime makes IPv6 sockets v6-only, so a mapped address names no
        // loopback socket this guest could have; refuse rather than reason.
        let mapped = SocketAddr::new(Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), 8000);
        for use_ in TCP {
            assert!(!loopback_tcp(mapped, use_), "{use_:?}");
        }
    }

    #[test]
    fn wildcard_is_admitted_only_for_an_ephemeral_bind() {
        for ip in [Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()] {
            assert!(loopback_tcp(SocketAddr::new(ip, 0), SocketAddrUse::TcpBind));
            assert!(!loopback_tcp(
                SocketAddr::new(ip, 8000),
                SocketAddrUse::TcpBind
            ));
            for use_ in [
                SocketAddrUse::TcpListen,
                SocketAddrUse::TcpAccept,
                SocketAddrUse::TcpConnect,
            ] {
                assert!(!loopback_tcp(SocketAddr::new(ip, 0), use_), "{ip} {use_:?}");
                assert!(
                    !loopback_tcp(SocketAddr::new(ip, 8000), use_),
                    "{ip} {use_:?}"
                );
            }
        }
    }

    #[test]
    fn udp_is_refused_even_on_loopback() {
        for a in ["127.0.0.1:5353", "[::1]:0", "0.0.0.0:0"] {
            for use_ in UDP {
                assert!(!loopback_tcp(addr(a), use_), "{a} {use_:?}");
            }
        }
    }
}
