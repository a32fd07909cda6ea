//! The freeness decisions of `hbutils_port::freeness`, the very code the
//! component runs, checked against models of the Linux, BSD (XNU) and
//! Windows bind rules (`tests/bind-models`), since these machines run only
//! Linux. Each case puts one holder on the port (on loopback or the
//! wildcard, IPv4 or IPv6, listening or only bound, of our user or another)
//! and asks what `is-free-port` answers, and whether a reservation made
//! first stops that holder, with the socket options wasmtime-wasi 48 sets on
//! that OS and the wildcard grant the host's default policy gives there.
//!
//! The table these cases make is `docs/platforms.md`'s, which the last test
//! compares with the file, so the document says what the code does.
#![cfg(not(target_arch = "wasm32"))]

use bind_models::{Addr, Errno, Family, Id, Kernel, Options, Os};
use hbutils_port::freeness::{self, Binder, Place, Refusal, Wildcard};
use hbutils_port::search::Error;
use std::cell::RefCell;
use std::rc::Rc;

const PORT: u16 = 8000;
const US: u32 = 501;
const THEM: u32 = 502;

/// Whether port-host's default policy grants the wildcard probes on `os`
/// (`NetworkPolicy::loopback`, by `cfg`).
fn host_grants(os: Os) -> bool {
    os != Os::Linux
}

/// The options wasmtime-wasi 48 binds with: SO_REUSEADDR except on Windows
/// (which gets no SO_EXCLUSIVEADDRUSE either); IPv6 sockets v6-only.
fn wasmtime_options(os: Os) -> Options {
    Options {
        reuse_addr: os != Os::Windows,
        exclusive: false,
        v6_only: true,
    }
}

/// What a typical server sets: SO_REUSEADDR on Unix (Python's socketserver,
/// Node, Go all do), nothing on Windows.
fn server_options(os: Os, v6_only: bool) -> Options {
    Options {
        reuse_addr: os != Os::Windows,
        exclusive: false,
        v6_only,
    }
}

/// A model socket that closes when dropped, as a real one does.
struct Socket {
    kernel: Rc<RefCell<Kernel>>,
    id: Id,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.kernel.borrow_mut().close(self.id);
    }
}

/// The component's socket calls on a model kernel, as our user, under a
/// policy that grants the wildcard binds or not.
struct ModelBinder {
    kernel: Rc<RefCell<Kernel>>,
    grants_wildcard: bool,
}

impl Binder for ModelBinder {
    type Socket = Socket;

    fn bind(&mut self, place: Place, port: u16) -> Result<Socket, Refusal> {
        assert_eq!(port, PORT, "the model has one port");
        let (family, addr) = match place {
            Place::Loopback4 => (Family::V4, Addr::Loopback),
            Place::Loopback6 => (Family::V6, Addr::Loopback),
            Place::Wildcard4 => (Family::V4, Addr::Wildcard),
            Place::Wildcard6 => (Family::V6, Addr::Wildcard),
        };
        if addr == Addr::Wildcard && !self.grants_wildcard {
            return Err(Refusal::Denied);
        }
        let os = self.kernel.borrow().os();
        let bound = self
            .kernel
            .borrow_mut()
            .bind(US, family, addr, wasmtime_options(os));
        match bound {
            Ok(id) => Ok(Socket {
                kernel: self.kernel.clone(),
                id,
            }),
            Err(Errno::AddrInUse) => Err(Refusal::InUse),
            // wasmtime-wasi maps EACCES / WSAEACCES to access-denied.
            Err(Errno::Access) => Err(Refusal::Denied),
        }
    }

    fn listen(&mut self, socket: Socket) -> Result<Socket, Refusal> {
        match self.kernel.borrow_mut().listen(socket.id) {
            Ok(()) => Ok(socket),
            Err(Errno::AddrInUse) => Err(Refusal::InUse),
            Err(Errno::Access) => Err(Refusal::Denied),
        }
    }

    fn port_of(&mut self, _: &Socket) -> Result<u16, Refusal> {
        Ok(PORT)
    }
}

/// One way a port can be held.
#[derive(Debug, Clone, Copy)]
struct Holder {
    family: Family,
    addr: Addr,
    dual_stack: bool,
    listening: bool,
    user: u32,
}

impl Holder {
    fn all() -> Vec<Holder> {
        let places = [
            (Family::V4, Addr::Loopback, false),
            (Family::V6, Addr::Loopback, false),
            (Family::V4, Addr::Wildcard, false),
            (Family::V6, Addr::Wildcard, false),
            (Family::V6, Addr::Wildcard, true),
            (Family::V4, Addr::Other, false),
        ];
        let mut all = Vec::new();
        for (family, addr, dual_stack) in places {
            for listening in [true, false] {
                for user in [US, THEM] {
                    all.push(Holder {
                        family,
                        addr,
                        dual_stack,
                        listening,
                        user,
                    });
                }
            }
        }
        all
    }

    fn name(&self) -> String {
        let place = match (self.family, self.addr, self.dual_stack) {
            (Family::V4, Addr::Loopback, _) => "127.0.0.1",
            (Family::V6, Addr::Loopback, _) => "[::1]",
            (Family::V4, Addr::Wildcard, _) => "0.0.0.0",
            (Family::V6, Addr::Wildcard, false) => "[::] v6-only",
            (Family::V6, Addr::Wildcard, true) => "[::] dual-stack",
            (Family::V4, Addr::Other, _) => "a LAN address",
            (Family::V6, Addr::Other, _) => "a LAN address (IPv6)",
        };
        let state = if self.listening { "listening" } else { "bound" };
        let who = if self.user == US {
            "same user"
        } else {
            "other user"
        };
        format!("{place}, {state}, {who}")
    }

    /// Binds (and listens) as the holder; the error if the kernel refuses.
    fn take(&self, kernel: &mut Kernel) -> Result<Id, Errno> {
        let options = server_options(kernel.os(), !self.dual_stack);
        let id = kernel.bind(self.user, self.family, self.addr, options)?;
        if self.listening {
            kernel.listen(id)?;
        }
        Ok(id)
    }

    /// Whether hbutils' `connect` to localhost would reach it.
    fn reachable(&self) -> bool {
        self.listening && self.addr != Addr::Other
    }
}

fn binder(os: Os, grants_wildcard: bool) -> (Rc<RefCell<Kernel>>, ModelBinder) {
    let kernel = Rc::new(RefCell::new(Kernel::new(os)));
    let binder = ModelBinder {
        kernel: kernel.clone(),
        grants_wildcard,
    };
    (kernel, binder)
}

/// `is-free-port` with `holder` on the port, as the WIT answer reads.
fn is_free_beside(os: Os, grants: bool, holder: &Holder) -> Result<bool, Error> {
    let (kernel, mut binder) = binder(os, grants);
    holder
        .take(&mut kernel.borrow_mut())
        .unwrap_or_else(|e| panic!("{os:?}: the holder {} could not bind: {e:?}", holder.name()));
    freeness::is_free(&mut binder, &mut Wildcard::Unknown, PORT)
}

/// Whether a reservation made first stops `holder` from taking the port.
fn reservation_stops(os: Os, grants: bool, holder: &Holder) -> bool {
    let (kernel, mut binder) = binder(os, grants);
    let held = freeness::hold(&mut binder, &mut Wildcard::Unknown, PORT)
        .unwrap()
        .expect("a free port is held");
    let stopped = holder.take(&mut kernel.borrow_mut()).is_err();
    drop(held);
    stopped
}

fn answer_text(answer: &Result<bool, Error>) -> &'static str {
    match answer {
        Ok(true) => "free",
        Ok(false) => "taken",
        Err(Error::AccessDenied) => "denied",
        Err(_) => "error",
    }
}

#[test]
fn a_listener_reachable_on_localhost_never_reads_free_on_any_os() {
    for os in Os::ALL {
        for holder in Holder::all().iter().filter(|h| h.reachable()) {
            let answer = is_free_beside(os, host_grants(os), holder);
            assert_ne!(
                answer,
                Ok(true),
                "{os:?}: is-free-port said free beside {}",
                holder.name()
            );
            // Only another account's socket on Windows refuses with
            // WSAEACCES; every other holder reads as plainly taken.
            let denied_allowed = os == Os::Windows && holder.user == THEM;
            assert!(
                answer == Ok(false) || (denied_allowed && answer == Err(Error::AccessDenied)),
                "{os:?}: {} gave {answer:?}",
                holder.name()
            );
        }
    }
}

#[test]
fn a_port_nobody_holds_is_free_and_can_be_held_on_every_os() {
    for os in Os::ALL {
        for grants in [false, true] {
            let (_kernel, mut binder) = binder(os, grants);
            let mut wildcard = Wildcard::Unknown;
            assert_eq!(
                freeness::is_free(&mut binder, &mut wildcard, PORT),
                Ok(true),
                "{os:?}"
            );
            let expected = if grants {
                Wildcard::Granted
            } else {
                Wildcard::Withheld
            };
            assert_eq!(wildcard, expected, "{os:?}: the grant is learned");
            let held = freeness::hold(&mut binder, &mut wildcard, PORT).unwrap();
            let held = held.expect("held");
            assert_eq!(held.guards.len(), if grants { 2 } else { 0 });
        }
    }
}

#[test]
fn a_reservation_stops_every_later_bind_of_its_port_that_ipv4_localhost_would_reach() {
    // The reservation listens on 127.0.0.1: it holds IPv4. A later socket on
    // 127.0.0.1, 0.0.0.0 or a dual-stack [::] would share its clients, so
    // none may bind. (IPv6-only holders are the table's business: Linux lets
    // them bind beside an IPv4 listener, as it always has.)
    for os in Os::ALL {
        for holder in Holder::all() {
            let ipv4 = holder.family == Family::V4 || holder.dual_stack;
            if holder.addr == Addr::Other || !ipv4 {
                continue;
            }
            assert!(
                reservation_stops(os, host_grants(os), &holder),
                "{os:?}: a reservation did not stop {}",
                holder.name()
            );
        }
    }
}

#[test]
fn without_the_wildcard_probes_bsd_and_windows_read_a_same_user_wildcard_listener_as_free() {
    // Why the host grants them there: the loopback bind alone is fooled.
    let dev_server = Holder {
        family: Family::V4,
        addr: Addr::Wildcard,
        dual_stack: false,
        listening: true,
        user: US,
    };
    for os in [Os::Bsd, Os::Windows] {
        assert_eq!(is_free_beside(os, false, &dev_server), Ok(true), "{os:?}");
        assert!(!reservation_stops(os, false, &dev_server), "{os:?}");
        assert_eq!(is_free_beside(os, true, &dev_server), Ok(false), "{os:?}");
    }
    assert_eq!(is_free_beside(Os::Linux, false, &dev_server), Ok(false));
}

#[test]
fn the_wildcard_probes_change_nothing_linux_answers_for_a_localhost_holder() {
    // Granted on Linux (port-host does not, by default), they add only
    // holders on other addresses, which hbutils' localhost check ignores.
    for holder in Holder::all() {
        let without = is_free_beside(Os::Linux, false, &holder);
        let with = is_free_beside(Os::Linux, true, &holder);
        if holder.addr != Addr::Other {
            assert_eq!(without, with, "{}", holder.name());
        }
    }
}

/// The table of `docs/platforms.md`, as the models answer it.
fn table() -> String {
    let mut text =
        String::from("| holder of the port | Linux | macOS (XNU) | Windows |\n|---|---|---|---|\n");
    for holder in Holder::all() {
        text.push_str(&format!("| {} |", holder.name()));
        for os in Os::ALL {
            let answer = is_free_beside(os, host_grants(os), &holder);
            let stops = if reservation_stops(os, host_grants(os), &holder) {
                "stopped"
            } else {
                "not stopped"
            };
            text.push_str(&format!(" {} / {stops} |", answer_text(&answer)));
        }
        text.push('\n');
    }
    text
}

#[test]
fn docs_platforms_md_holds_the_table_these_models_give() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/platforms.md");
    let text = std::fs::read_to_string(docs).expect("docs/platforms.md");
    let table = table();
    assert!(
        text.contains(&table),
        "docs/platforms.md does not hold the table the models give; it should read:\n{table}"
    );
}
