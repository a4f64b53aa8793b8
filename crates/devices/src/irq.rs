//! Interrupt triggers backed by an eventfd registered as a KVM irqfd, so that
//! raising an edge-triggered interrupt is one write and never a return to
//! the VMM's control path.

use std::io;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// An edge-triggered interrupt: each `trigger` injects one edge.
#[derive(Clone)]
pub struct EventFdTrigger(Arc<EventFd>);

impl EventFdTrigger {
    /// Wraps an eventfd that the VMM has registered as an irqfd.
    pub fn new(evt: EventFd) -> Self {
        EventFdTrigger(Arc::new(evt))
    }

    /// The underlying eventfd, for registration with KVM.
    pub fn eventfd(&self) -> &EventFd {
        &self.0
    }
}

impl vm_superio::Trigger for EventFdTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}
