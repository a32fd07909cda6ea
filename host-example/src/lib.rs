//! Embedding the `hbutils-port` component in a wasmtime host.
//!
//! The shape is wasmtime's own component examples: an engine and the
//! compiled component once per process ([`PortHost`]), then a store and an
//! instance per caller, with typed calls: [`Session`] for sync code,
//! [`AsyncSession`] inside tokio, both on one lifecycle (a deadline that
//! covers host calls; a session that fails is ended and frees what it held).
//! What a guest may reach is data, a [`NetworkPolicy`]; what it may use is
//! bounded per store by [`StoreBounds`], per host by [`Limits`] and per
//! pooled engine by [`Pooling`].
//!
//! ```
//! use port_host::{Candidates, NetworkPolicy, PortHost, PortRange, Stderr};
//!
//! # fn main() -> wasmtime::Result<()> {
//! // Engine and compiled component: once per process.
//! let host = PortHost::new()?;
//! // A store and an instance: one per caller.
//! let mut session = host.session(NetworkPolicy::loopback(), Stderr::Inherit)?;
//!
//! match session.is_free_port(8080)? {
//!     Ok(free) => println!("8080 is free: {free}"),
//!     Err(error) => eprintln!("cannot tell: {error:?}"),
//! }
//! let range = Candidates::Range(PortRange { start: 8000, end: 8100, step: 1 });
//! match session.get_free_port(Some(&range), true)? {
//!     Ok(port) => println!("use {port}"),
//!     Err(error) => eprintln!("{error:?}"),
//! }
//!
//! // Or hold a port until it is needed: nobody else can bind it meanwhile.
//! if let Ok(reservation) = session.reserve_port(Some(&range), true)? {
//!     if let Ok(port) = session.reservation_port(&reservation)? {
//!         println!("reserved {port}");
//!     }
//!     // Or `take_socket` for the listening socket itself.
//!     session.release(&reservation)?.ok();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The same inside tokio, with a tenant confined to its own ports:
//!
//! ```
//! use port_host::{Candidates, NetworkPolicy, PortBlock, PortHost, PortRange, Stderr};
//!
//! # #[tokio::main] async fn main() -> wasmtime::Result<()> {
//! let host = PortHost::new()?;
//! let tenant = NetworkPolicy::loopback().confined_to(PortBlock::new(20_000..20_100)?);
//! let mut session = host.async_session(tenant, Stderr::Inherit).await?;
//! let block = Candidates::Range(PortRange { start: 20_000, end: 20_100, step: 1 });
//! let answer = session.get_free_port(Some(&block), true).await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! An embedder with its own store data, linker or engine uses the pieces
//! directly: [`NetworkPolicy::apply`] on its `WasiCtxBuilder`,
//! [`async_linker`] (or wasmtime-wasi's own `add_to_linker_async`) on any
//! `T: WasiView`, the generated [`PortUtils`] bindings (see [`bindings`]),
//! and [`PortHost::on_engine`]. The component's bytes are [`COMPONENT`].
#![warn(missing_docs)]

mod admission;
mod async_session;
pub mod bindings;
mod capture;
mod deadline;
mod engine;
mod engine_config;
mod epoch;
mod error;
mod host;
mod limiter;
mod limits;
mod policy;
mod pooling;
#[cfg(all(target_os = "linux", feature = "portserver"))]
pub mod portserver;
mod session;
mod store;

pub use async_session::{AsyncSession, Reservation, TakenSocket};
pub use bindings::exports::hbutils::network::port::{
    Candidates, ErrorCode, FamilyStatus, PortRange, PortStatus, ReservationError,
};
pub use bindings::{PortUtils, PortUtilsPre};
pub use capture::StderrCapture;
pub use engine::engine;
pub use epoch::{EPOCH_TICK, start_epoch_ticker};
pub use error::{DeadlineExceeded, ForeignHandle, QuotaExceeded, SessionEnded, SessionLimit};
pub use host::{COMPONENT, PortHost, async_linker};
pub use limits::{Limits, Pooling, StoreBounds};
pub use policy::{BadBlock, NetworkPolicy, PortBlock};
pub use session::Session;
pub use store::{State, Stderr, sandboxed_store};

/// The interface the sessions call, at the version this crate was written
/// against; the component must export it.
pub const PORT_INTERFACE: &str = "hbutils:network/port@0.4.0";

// A host is shared across threads; a session moves to the thread (or task)
// that calls it. Checked here so that a change that breaks either fails to
// build instead of failing an embedder.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn movable<T: Send>() {}
    shared::<PortHost>();
    shared::<Reservation>();
    shared::<TakenSocket>();
    movable::<Session>();
    movable::<AsyncSession>();
};
