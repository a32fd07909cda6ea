//! The host grants loopback TCP and nothing else. An adversarial guest
//! (`tests/escape-guest`) tries each way out under the same policy the
//! component gets; `--deny-network` takes even loopback away.

use crate::common::{free_port, ipv6_loopback, listen, session};
use port_host::{
    Candidates, ErrorCode, Limits, NetworkPolicy, PortRange, State, Stderr, StoreBounds,
};
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{Component, ComponentNamedList, Instance, Lift, Lower};
use wasmtime_wasi::runtime::in_tokio;

pub struct Escape {
    pub store: Store<State>,
    pub instance: Instance,
    deadline: Duration,
}

impl Escape {
    pub fn new(network: NetworkPolicy) -> Self {
        Self::with_limits(network, Limits::default())
    }

    pub fn with_limits(network: NetworkPolicy, limits: Limits) -> Self {
        let engine = port_host::engine(None).unwrap();
        let component = Component::from_file(&engine, test_guests::ESCAPE_GUEST).unwrap();
        let linker = port_host::async_linker(&engine).unwrap();
        let (mut store, _) =
            port_host::sandboxed_store(&engine, network, Stderr::Inherit, &limits.store);
        let instance = in_tokio(linker.instantiate_async(&mut store, &component)).unwrap();
        Escape {
            store,
            instance,
            deadline: limits.call_timeout,
        }
    }

    /// Calls the export `name` as a session would: async, so the guest
    /// yields at each epoch tick, under the call deadline. `Err` says why
    /// the call did not return (a trap, a bound, the deadline).
    pub fn try_call<P, R>(&mut self, name: &str, params: P) -> Result<R, String>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let func = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .unwrap();
        let deadline = self.deadline;
        let store = &mut self.store;
        in_tokio(
            async move { tokio::time::timeout(deadline, func.call_async(store, params)).await },
        )
        .map_err(|_| format!("ran past its {deadline:?} deadline"))?
        .map_err(|error| format!("{error:?}"))
    }

    pub fn call<P: ComponentNamedList + Lower + Send + Sync + 'static>(
        &mut self,
        name: &str,
        params: P,
    ) -> String {
        self.try_call::<P, (String,)>(name, params).unwrap().0
    }

    pub fn bind_tcp(&mut self, ip: &str, port: u16) -> String {
        self.call("bind-tcp", (ip.to_owned(), port))
    }
    fn listen_tcp(&mut self, ip: Option<&str>) -> String {
        self.call("listen-tcp", (ip.map(str::to_owned),))
    }
    pub fn connect_tcp(&mut self, ip: &str, port: u16) -> String {
        self.call("connect-tcp", (ip.to_owned(), port))
    }
    fn bind_udp(&mut self, ip: &str, port: u16) -> String {
        self.call("bind-udp", (ip.to_owned(), port))
    }
    fn lookup(&mut self, name: &str) -> String {
        self.call("lookup", (name.to_owned(),))
    }
}

#[test]
fn loopback_bind_and_listen_are_granted() {
    // The control: without it, every refusal below could be a broken guest.
    let mut guest = Escape::new(NetworkPolicy::loopback());
    assert_eq!(guest.bind_tcp("127.0.0.1", free_port()), "ok");
    assert_eq!(guest.bind_tcp("127.0.0.1", 0), "ok");
    assert_eq!(guest.listen_tcp(Some("127.0.0.1")), "ok");
    if ipv6_loopback() {
        assert_eq!(guest.bind_tcp("::1", free_port()), "ok");
        assert_eq!(guest.listen_tcp(Some("::1")), "ok");
    } else {
        crate::common::skipped(
            "the [::1] half of loopback_bind_and_listen_are_granted: no IPv6 loopback",
        );
    }
}

#[test]
fn the_default_policy_refuses_connect_to_a_loopback_listener() {
    let server = listen(0);
    let port = server.local_addr().unwrap().port();
    let mut guest = Escape::new(NetworkPolicy::loopback());
    assert_eq!(
        guest.connect_tcp("127.0.0.1", port),
        "connect: access-denied"
    );
}

#[test]
fn connect_to_a_loopback_listener_is_allowed_when_granted() {
    let server = listen(0);
    let port = server.local_addr().unwrap().port();
    let mut guest = Escape::new(NetworkPolicy::loopback().with_connect());
    assert_eq!(guest.connect_tcp("127.0.0.1", port), "ok");
}

/// Without the wildcard probes (the default on Linux; macOS and Windows
/// grant a bind there, never a listen: wildcard_probes.rs).
#[test]
fn bind_on_a_wildcard_address_is_refused() {
    let mut guest = Escape::new(NetworkPolicy::loopback().with_wildcard_probes(false));
    let port = free_port();
    assert_eq!(guest.bind_tcp("0.0.0.0", port), "bind: access-denied");
    assert_eq!(guest.bind_tcp("::", port), "bind: access-denied");
}

#[test]
fn listen_on_a_wildcard_socket_is_refused() {
    let mut guest = Escape::new(NetworkPolicy::loopback());
    // Unbound: WASI 0.2 refuses outright (the policy's answer to the
    // implicit wildcard bind and listen would also be no; see policy.rs).
    assert_eq!(guest.listen_tcp(None), "listen: invalid-state");
    // Without connect, even the wildcard with port 0 is refused at the bind.
    assert_eq!(guest.listen_tcp(Some("0.0.0.0")), "bind: access-denied");
    // With connect, that bind is admitted (it is a connect's implicit one),
    // and the listen is checked against the real address and refused.
    let mut connecting = Escape::new(NetworkPolicy::loopback().with_connect());
    assert_eq!(
        connecting.listen_tcp(Some("0.0.0.0")),
        "listen: access-denied"
    );
    assert_eq!(connecting.listen_tcp(Some("::")), "listen: access-denied");
}

#[test]
fn bind_on_a_non_loopback_address_is_refused() {
    let mut guest = Escape::new(NetworkPolicy::loopback());
    // Refused by the policy before any syscall, so no address need exist here.
    assert_eq!(guest.bind_tcp("192.0.2.1", 0), "bind: access-denied");
    assert_eq!(guest.bind_tcp("2001:db8::1", 0), "bind: access-denied");
}

#[test]
fn connect_to_a_non_loopback_address_is_refused() {
    let mut guest = Escape::new(NetworkPolicy::loopback().with_connect());
    // The policy refuses before any packet is sent; 100::/64 is the IPv6
    // discard prefix, so even a broken policy would reach nothing.
    assert_eq!(guest.connect_tcp("100::1", 9), "connect: access-denied");
}

#[test]
fn udp_is_refused_even_on_loopback() {
    let mut guest = Escape::new(NetworkPolicy::loopback());
    assert_eq!(guest.bind_udp("127.0.0.1", 0), "create: access-denied");
}

#[test]
fn name_lookup_is_refused() {
    let mut guest = Escape::new(NetworkPolicy::loopback());
    // wasmtime-wasi's word for a lookup the host does not allow; "localhost"
    // itself resolves from /etc/hosts wherever lookups are allowed.
    assert_eq!(
        guest.lookup("localhost"),
        "resolve: permanent-resolver-failure"
    );
}

#[test]
fn denied_network_refuses_even_loopback() {
    let mut guest = Escape::new(NetworkPolicy::denied());
    assert_eq!(guest.bind_tcp("127.0.0.1", 0), "create: access-denied");
    assert_eq!(
        guest.connect_tcp("127.0.0.1", free_port()),
        "create: access-denied"
    );
}

#[test]
fn denied_network_makes_both_functions_access_denied() {
    let mut session = crate::common::host()
        .session(NetworkPolicy::denied(), Stderr::Capture)
        .unwrap();
    let port = free_port();
    assert_eq!(
        session.is_free_port(port).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    let candidates = Candidates::Range(PortRange {
        start: port.into(),
        end: u32::from(port) + 1,
        step: 1,
    });
    assert_eq!(
        session.get_free_port(Some(&candidates), true).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(
        session.get_free_port(None, false).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
}

#[test]
fn a_session_after_a_denied_one_is_unaffected() {
    let port = free_port();
    let mut denied = crate::common::host()
        .session(NetworkPolicy::denied(), Stderr::Capture)
        .unwrap();
    assert_eq!(
        denied.is_free_port(port).unwrap(),
        Err(ErrorCode::AccessDenied)
    );
    assert_eq!(session().is_free_port(port).unwrap(), Ok(true));
}

#[test]
fn runaway_guest_is_stopped_by_the_call_deadline() {
    let limits = Limits::default().with_call_timeout(std::time::Duration::from_millis(200));
    let mut guest = Escape::with_limits(NetworkPolicy::loopback(), limits);
    // It never returns on its own: only the deadline, which the guest's
    // yield at each epoch tick lets fire, brings the call back.
    let error = guest.try_call::<(), ()>("spin", ()).unwrap_err();
    assert!(error.contains("deadline"), "{error}");
}

#[test]
fn memory_hungry_guest_is_stopped_by_the_memory_limit() {
    let limits = Limits::default().with_store(StoreBounds::default().with_memory_bytes(16 << 20));
    let mut guest = Escape::with_limits(NetworkPolicy::loopback(), limits);
    assert_eq!(
        guest.try_call::<(u32,), (u32,)>("hoard", (4,)).unwrap(),
        (4 << 20,),
        "well within the limit"
    );
    let error = guest
        .try_call::<(u32,), (u32,)>("hoard", (64,))
        .unwrap_err();
    assert!(error.contains("memory"), "{error}");
}
