//! vm-superio's interrupt trait over the platform's [`InterruptLine`], so
//! the UART raises its IRQ through whatever the VMM wired (an irqfd).

use std::io;
use std::sync::Arc;

use rvirt_platform::InterruptLine;

/// An [`InterruptLine`] as vm-superio's `Trigger`: each `trigger` raises
/// the line once (one edge for an ISA IRQ).
#[derive(Clone)]
pub struct LineTrigger(Arc<dyn InterruptLine>);

impl LineTrigger {
    /// Wraps the line the device raises.
    pub fn new(line: Arc<dyn InterruptLine>) -> Self {
        LineTrigger(line)
    }
}

impl vm_superio::Trigger for LineTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.raise()
    }
}
