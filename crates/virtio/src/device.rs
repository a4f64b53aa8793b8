//! The contract between the transport and a device model.

use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};

use crate::Memory;

/// How a device tells the driver something happened. Implemented by the
/// transport ([`crate::transport::TransportInterrupt`]), which keeps the
/// InterruptStatus (ISR) register and the DEVICE_NEEDS_RESET bit up to date
/// and raises the line or the MSI-X vector.
pub trait VirtioInterrupt: Send + Sync {
    /// Buffers were added to the used ring of `queue`.
    fn signal_used_queue(&self, queue: u16);
    /// The configuration space changed.
    fn signal_config_change(&self);
    /// The device hit a broken queue and can go on only after a reset.
    fn signal_needs_reset(&self);
}

/// What a device receives when the driver sets DRIVER_OK.
pub struct ActivateContext {
    /// Guest memory; every access goes through its checked accessors.
    pub mem: Memory,
    /// One queue per entry of [`VirtioDevice::queue_max_sizes`]; queues the
    /// driver left disabled are present but not ready.
    pub queues: Vec<Queue>,
    /// Where used-buffer and config interrupts go.
    pub interrupt: Arc<dyn VirtioInterrupt>,
    /// The features the driver accepted (transport bits included).
    pub acked_features: u64,
}

/// Why a device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The device needs a queue the driver did not enable.
    #[error("queue {0} is not ready")]
    QueueNotReady(usize),
    /// The driver gave a different number of queues than the device has.
    #[error("expected {expected} queues, got {got}")]
    QueueCount { expected: usize, got: usize },
}

/// A virtio device model, independent of the transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (2 for block, 4 for entropy, ...).
    fn device_type(&self) -> u32;
    /// The maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Device-specific feature bits; the transport adds its own.
    fn device_features(&self) -> u64;
    /// Reads the device-specific configuration space. Bytes past its end
    /// read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the configuration space; read-only by default.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        tracing::debug!(offset, len = data.len(), "ignored config space write");
    }
    /// Starts the device with the queues the driver set up.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;
    /// Stops the device and forgets its queues (the driver wrote Status 0).
    fn reset(&mut self);
    /// Does the work pending on `queue`; called by the VMM's event loop when
    /// the queue's ioeventfd fires. Does nothing before activation.
    fn process_queue(&mut self, queue: u16);
    /// A host descriptor the device wants the event loop to wait on for
    /// readability right now (a tap with frames for the guest, an I/O
    /// completion eventfd), or `None`. Asked again after every call into
    /// the device, so a device can stop the polling (backpressure) and
    /// resume it.
    fn host_fd(&self) -> Option<RawFd> {
        None
    }
    /// Called by the event loop when [`VirtioDevice::host_fd`] is readable.
    fn process_host_fd(&mut self) {}
    /// A host descriptor to wait on for writability right now (a back-end
    /// that pushed back), or `None`; asked again as `host_fd` is.
    fn host_fd_out(&self) -> Option<RawFd> {
        None
    }
    /// Called by the event loop when [`VirtioDevice::host_fd_out`] is
    /// writable.
    fn process_host_fd_out(&mut self) {}
}

/// The device's `N` queues, if the transport handed over exactly `N` and the
/// driver made every one ready.
pub(crate) fn ready_queues<const N: usize>(
    queues: Vec<Queue>,
) -> Result<[Queue; N], ActivateError> {
    let got = queues.len();
    let queues: [Queue; N] = queues
        .try_into()
        .map_err(|_| ActivateError::QueueCount { expected: N, got })?;
    if let Some(i) = queues.iter().position(|q| !q.ready()) {
        return Err(ActivateError::QueueNotReady(i));
    }
    Ok(queues)
}

/// For one-queue devices: the queue, if the driver enabled exactly that one.
pub(crate) fn single_ready_queue(queues: Vec<Queue>) -> Result<Queue, ActivateError> {
    let [queue] = ready_queues(queues)?;
    Ok(queue)
}
