//! A count of webhooks a simulator is sending right now (queued or on the wire), so
//! a harness can tell "the service has seen everything" from "a webhook is still on
//! its way". A delivery waiting on the clock for its retry is not in flight: only the
//! clock can move it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Default, Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// One more delivery is on its way; it ends with [`InFlight::done`].
    pub fn start(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn done(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
