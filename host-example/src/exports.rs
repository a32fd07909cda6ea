//! The component's `hbutils:network/port` exports: found once per component,
//! typed once per instance, so that the sync and the async session make the
//! very same calls and differ only in `call` against `call_async`.

use crate::{Candidates, ErrorCode, PortStatus, ReservationError, State};
use wasmtime::component::{
    Component, ComponentExportIndex, Func, Instance, Resource, ResourceAny, TypedFunc,
};
use wasmtime::error::Context;
use wasmtime::{Result, Store};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;

/// The interface this host calls, and the version it was written against.
pub const PORT_INTERFACE: &str = "hbutils:network/port@0.3.0";

/// A port held by a session's instance. It is freed by the session's
/// `release` or `drop_reservation`, or by dropping the session; a
/// `Reservation` value dropped on its own frees nothing until the session goes.
#[derive(Debug)]
pub struct Reservation(pub(crate) ResourceAny);

/// Where each export sits in a component.
#[derive(Clone)]
pub(crate) struct ExportIndices {
    is_free_port: ComponentExportIndex,
    get_free_port: ComponentExportIndex,
    reserve_port: ComponentExportIndex,
    get_free_ports: ComponentExportIndex,
    reserve_ports: ComponentExportIndex,
    probe_port: ComponentExportIndex,
    port: ComponentExportIndex,
    take_socket: ComponentExportIndex,
    release: ComponentExportIndex,
}

pub(crate) type CandidatesCall<'a, T> = TypedFunc<(Option<&'a Candidates>, bool), (T,)>;
pub(crate) type CountCall<'a, T> = TypedFunc<(Option<&'a Candidates>, u32, bool), (T,)>;

/// One instance's exports, typed.
pub(crate) struct Exports {
    pub is_free_port: TypedFunc<(u16,), (Result<bool, ErrorCode>,)>,
    /// Typed per call: its argument is borrowed for that call only.
    get_free_port: Func,
    reserve_port: Func,
    get_free_ports: Func,
    reserve_ports: Func,
    pub probe_port: TypedFunc<(u16,), (Result<PortStatus, ErrorCode>,)>,
    pub port: TypedFunc<(ResourceAny,), (Result<u16, ReservationError>,)>,
    pub take_socket: TypedFunc<(ResourceAny,), (Result<Resource<TcpSocket>, ReservationError>,)>,
    pub release: TypedFunc<(ResourceAny,), (Result<(), ReservationError>,)>,
}

impl ExportIndices {
    pub fn new(component: &Component) -> Result<Self> {
        let interface = component
            .get_export_index(None, PORT_INTERFACE)
            .with_context(|| format!("the component does not export {PORT_INTERFACE}"))?;
        let find = |name: &str| {
            component
                .get_export_index(Some(&interface), name)
                .with_context(|| format!("{PORT_INTERFACE} has no function {name}"))
        };
        Ok(ExportIndices {
            is_free_port: find("is-free-port")?,
            get_free_port: find("get-free-port")?,
            reserve_port: find("reserve-port")?,
            get_free_ports: find("get-free-ports")?,
            reserve_ports: find("reserve-ports")?,
            probe_port: find("probe-port")?,
            port: find("[method]reservation.port")?,
            take_socket: find("[method]reservation.take-socket")?,
            release: find("[method]reservation.release")?,
        })
    }

    /// The exports of `instance`, each checked against the WIT types this host uses.
    pub fn load(&self, store: &mut Store<State>, instance: &Instance) -> Result<Exports> {
        let func = |store: &mut Store<State>, index: &ComponentExportIndex| {
            instance
                .get_func(&mut *store, index)
                .with_context(|| format!("{PORT_INTERFACE} lacks an export it declared"))
        };
        let get_free_port = func(store, &self.get_free_port)?;
        let reserve_port = func(store, &self.reserve_port)?;
        let get_free_ports = func(store, &self.get_free_ports)?;
        let reserve_ports = func(store, &self.reserve_ports)?;
        let exports = Exports {
            is_free_port: func(store, &self.is_free_port)?.typed(&*store)?,
            get_free_port,
            reserve_port,
            get_free_ports,
            reserve_ports,
            probe_port: func(store, &self.probe_port)?.typed(&*store)?,
            port: func(store, &self.port)?.typed(&*store)?,
            take_socket: func(store, &self.take_socket)?.typed(&*store)?,
            release: func(store, &self.release)?.typed(&*store)?,
        };
        // Checked here once, so that a mistyped component fails at start.
        exports.get_free_port(store)?;
        exports.reserve_port(store)?;
        exports.get_free_ports(store)?;
        exports.reserve_ports(store)?;
        Ok(exports)
    }
}

impl Exports {
    pub fn get_free_port<'a>(
        &self,
        store: &Store<State>,
    ) -> Result<CandidatesCall<'a, Result<u16, ErrorCode>>> {
        self.get_free_port.typed(store)
    }

    pub fn reserve_port<'a>(
        &self,
        store: &Store<State>,
    ) -> Result<CandidatesCall<'a, Result<ResourceAny, ErrorCode>>> {
        self.reserve_port.typed(store)
    }

    pub fn get_free_ports<'a>(
        &self,
        store: &Store<State>,
    ) -> Result<CountCall<'a, Result<Vec<u16>, ErrorCode>>> {
        self.get_free_ports.typed(store)
    }

    pub fn reserve_ports<'a>(
        &self,
        store: &Store<State>,
    ) -> Result<CountCall<'a, Result<Vec<ResourceAny>, ErrorCode>>> {
        self.reserve_ports.typed(store)
    }
}
