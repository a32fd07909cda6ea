//! A host's count of live sessions, and the place each session holds in it
//! until it ends.

use crate::error::SessionLimit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Live sessions of one host (shared by its clones) and how many it allows.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    live: Arc<AtomicUsize>,
    bound: usize,
}

/// Holds one of a host's places; gives it back when dropped.
pub(crate) struct Admission(Arc<AtomicUsize>);

impl Sessions {
    pub(crate) fn new(bound: usize) -> Self {
        Sessions {
            live: Arc::new(AtomicUsize::new(0)),
            bound,
        }
    }

    /// A place for one more session, unless all are taken.
    pub(crate) fn admit(&self) -> Result<Admission, SessionLimit> {
        let bound = self.bound;
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < bound).then_some(live + 1)
            })
            .map(|_| Admission(self.live.clone()))
            .map_err(|_| SessionLimit { limit: bound })
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_given_back_admits_the_next_session() {
        let sessions = Sessions::new(2);
        let first = sessions.admit().unwrap();
        let _second = sessions.admit().unwrap();
        assert_eq!(sessions.admit().err(), Some(SessionLimit { limit: 2 }));
        drop(first);
        assert_eq!(sessions.live(), 1);
        assert!(sessions.admit().is_ok());
    }
}
