//! The host's own failures, one type each, so that an embedder matches on a
//! type rather than on text. Each rides in the [`wasmtime::Error`] a session
//! call returns and is found with `downcast_ref`:
//!
//! ```
//! use port_host::{Limits, NetworkPolicy, PortHost, SessionLimit, Stderr};
//!
//! # fn main() -> wasmtime::Result<()> {
//! let host = PortHost::embedded(Limits::default().with_sessions(1))?;
//! let _first = host.session(NetworkPolicy::loopback(), Stderr::Capture)?;
//! let second = host.session(NetworkPolicy::loopback(), Stderr::Capture);
//! let error = second.expect_err("the host runs one session at most");
//! assert_eq!(error.downcast_ref::<SessionLimit>().map(|limit| limit.limit), Some(1));
//! # Ok(())
//! # }
//! ```
//!
//! The component's own answers (`error-code`, `reservation-error`) are not
//! here: they are the inner `Result` of every call.
//!
//! A failed call's wasmtime error is named here too, by the bound it ran into.

use crate::limits::StoreBounds;
use std::fmt;
use std::time::Duration;
use wasmtime::component::ResourceTableError;

/// A call ran past [`Limits::call_timeout`](crate::Limits::call_timeout) and
/// was stopped, mid host call if need be. The session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadlineExceeded {
    /// The deadline the call had.
    pub timeout: Duration,
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the component ran past its {} s deadline and was stopped",
            self.timeout.as_secs_f64()
        )
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A call on a session that has already ended: an earlier call trapped, ran
/// past its deadline, went over a quota or was cancelled, and the store was
/// freed then.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEnded {
    /// Why the session ended: the error its last call returned.
    pub cause: String,
}

impl fmt::Display for SessionEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "this session has ended: {}", self.cause)
    }
}

impl std::error::Error for SessionEnded {}

/// The host already runs [`Limits::sessions`](crate::Limits::sessions)
/// sessions; one must end before another starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionLimit {
    /// The host's limit.
    pub limit: usize,
}

impl fmt::Display for SessionLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this host already runs its limit of {} sessions",
            self.limit
        )
    }
}

impl std::error::Error for SessionLimit {}

/// The component held more live sockets, streams and pollables than
/// [`StoreBounds::resources`](crate::StoreBounds::resources) allows and was
/// stopped. The session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaExceeded {
    /// The store's quota.
    pub resources: usize,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the component went over its quota of {} live sockets, streams and pollables \
             and was stopped",
            self.resources
        )
    }
}

impl std::error::Error for QuotaExceeded {}

/// A [`Reservation`](crate::Reservation) was handed to a session other than
/// the one that made it. Nothing was called: this session goes on, and the
/// reservation still holds its port in its own session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignHandle;

impl fmt::Display for ForeignHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "this reservation belongs to another session: use it with the session that made it",
        )
    }
}

impl std::error::Error for ForeignHandle {}

/// Names the bound a failed call ran into, as context over the error itself:
/// the trap or the host's error stays the source, for `downcast_ref`.
pub(crate) fn explain(error: wasmtime::Error, bounds: &StoreBounds) -> wasmtime::Error {
    let table_error = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ResourceTableError>())
        .map(|table| (matches!(table, ResourceTableError::Full), table.to_string()));
    match table_error {
        Some((true, _)) => error.context(QuotaExceeded {
            resources: bounds.resources,
        }),
        Some((false, what)) => error.context(format!(
            "the component used a handle the host does not hold for it ({what}) and was stopped"
        )),
        None if error.downcast_ref::<wasmtime::Trap>().is_some() => {
            error.context("the component trapped and was stopped")
        }
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_table_is_reported_as_a_quota_and_the_source_stays() {
        let bounds = StoreBounds::default();
        let full = explain(wasmtime::Error::new(ResourceTableError::Full), &bounds);
        assert!(full.to_string().contains("quota of 1000"), "{full}");
        assert_eq!(
            full.downcast_ref::<QuotaExceeded>()
                .map(|quota| quota.resources),
            Some(1000)
        );
        assert!(full.downcast_ref::<ResourceTableError>().is_some());
        for other in [
            ResourceTableError::NotPresent,
            ResourceTableError::WrongType,
            ResourceTableError::HasChildren,
        ] {
            let what = other.to_string();
            let error = explain(wasmtime::Error::new(other), &bounds);
            let message = error.to_string();
            assert!(!message.contains("quota"), "{message}");
            assert!(message.contains(&what), "{message}");
            assert!(error.downcast_ref::<ResourceTableError>().is_some());
        }
    }

    #[test]
    fn a_trap_keeps_its_type_under_the_explanation() {
        let error = explain(
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached),
            &StoreBounds::default(),
        );
        assert_eq!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(&wasmtime::Trap::UnreachableCodeReached)
        );
        assert!(error.to_string().contains("trapped"), "{error}");
    }
}
