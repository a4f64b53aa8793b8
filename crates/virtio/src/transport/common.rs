//! The driver-facing state machine every transport shares: the Status
//! handshake, feature banks and negotiation, queue configuration,
//! activation, reset and DEVICE_NEEDS_RESET.
//!
//! A transport decodes its registers into calls on [`VirtioCore`]; the core
//! never sees an offset. When the driver sets DRIVER_OK the core builds
//! `virtio_queue::Queue`s from the validated queue registers and hands
//! them to the device.

use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use super::TransportInterrupt;
use crate::ratelimit::warn_limited;
use crate::{features, ActivateContext, Memory, VirtioDevice, VirtioInterrupt};

pub const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
pub const DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
pub const FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
pub const DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
pub const FAILED: u32 = VIRTIO_CONFIG_S_FAILED;
pub const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;

/// Called for a queue kick that no ioeventfd caught.
pub trait QueueNotifier: Send + Sync {
    /// The driver kicked queue `queue`.
    fn notify(&self, queue: u16);
}

/// A queue register, as both transports name them. 64-bit addresses are
/// written in 32-bit halves on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueField {
    Size,
    Ready,
    DescLow,
    DescHigh,
    AvailLow,
    AvailHigh,
    UsedLow,
    UsedHigh,
}

/// The registers of one queue, as the driver wrote them.
#[derive(Debug, Clone, Copy)]
struct QueueRegs {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueRegs {
    fn new(max_size: u16) -> Self {
        QueueRegs {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            avail: 0,
            used: 0,
        }
    }

    /// Builds the queue, or says why the driver's values are unusable.
    fn build(&self, mem: &Memory, event_idx: bool) -> Result<Queue, QueueSetupError> {
        let mut queue = Queue::new(self.max_size)?;
        queue.try_set_size(self.size)?;
        queue.try_set_desc_table_address(GuestAddress(self.desc))?;
        queue.try_set_avail_ring_address(GuestAddress(self.avail))?;
        queue.try_set_used_ring_address(GuestAddress(self.used))?;
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        if !queue.is_valid(mem) {
            return Err(QueueSetupError::OutsideMemory);
        }
        Ok(queue)
    }
}

/// Why the driver's queue registers are unusable.
#[derive(Debug, thiserror::Error)]
enum QueueSetupError {
    #[error("invalid queue parameters: {0}")]
    Invalid(virtio_queue::Error),
    #[error("rings are outside guest memory")]
    OutsideMemory,
}

impl From<virtio_queue::Error> for QueueSetupError {
    fn from(error: virtio_queue::Error) -> Self {
        QueueSetupError::Invalid(error)
    }
}

fn set_low(field: &mut u64, value: u32) {
    *field = (*field & !0xffff_ffff) | u64::from(value);
}

fn set_high(field: &mut u64, value: u32) {
    *field = (*field & 0xffff_ffff) | (u64::from(value) << 32);
}

/// The transport-independent state of one virtio device as its driver
/// drives it.
pub struct VirtioCore {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: Memory,
    interrupt: Arc<TransportInterrupt>,
    notifier: Option<Arc<dyn QueueNotifier>>,
    device_type: u32,
    offered: u64,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueRegs>,
    activated: bool,
}

impl VirtioCore {
    /// The core of `device` over `mem`, raising interrupts through
    /// `interrupt` (made for as many queues as the device has).
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: Memory,
        interrupt: Arc<TransportInterrupt>,
    ) -> Self {
        let (device_type, offered, queues) = {
            let dev = lock(&device);
            (
                dev.device_type(),
                dev.device_features() | features::TRANSPORT,
                dev.queue_max_sizes()
                    .iter()
                    .map(|&m| QueueRegs::new(m))
                    .collect(),
            )
        };
        VirtioCore {
            device,
            mem,
            interrupt,
            notifier: None,
            device_type,
            offered,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            activated: false,
        }
    }

    /// Sets the fallback for kicks that no ioeventfd caught.
    pub fn set_notifier(&mut self, notifier: Arc<dyn QueueNotifier>) {
        self.notifier = Some(notifier);
    }

    /// The device.
    pub fn device(&self) -> Arc<Mutex<dyn VirtioDevice>> {
        self.device.clone()
    }

    /// The interrupt state shared with the device.
    pub fn interrupt(&self) -> &Arc<TransportInterrupt> {
        &self.interrupt
    }

    /// The virtio device ID.
    pub fn device_type(&self) -> u32 {
        self.device_type
    }

    /// How many queues the device has.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The device status as the driver reads it (DEVICE_NEEDS_RESET
    /// included).
    pub fn status(&self) -> u32 {
        let reset = if self.interrupt.needs_reset() {
            NEEDS_RESET
        } else {
            0
        };
        self.status | reset
    }

    /// The features the driver wrote.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The bank DeviceFeatures reads (virtio-pci reads the selector back).
    pub fn device_features_select(&self) -> u32 {
        self.device_features_sel
    }

    /// The bank DriverFeatures writes.
    pub fn driver_features_select(&self) -> u32 {
        self.driver_features_sel
    }

    /// Selects the 32-bit bank DeviceFeatures reads.
    pub fn select_device_features(&mut self, bank: u32) {
        self.device_features_sel = bank;
    }

    /// The selected bank of the offered features (0 past bank 1).
    pub fn device_features(&self) -> u32 {
        match self.device_features_sel {
            0 => self.offered as u32,
            1 => (self.offered >> 32) as u32,
            _ => 0,
        }
    }

    /// Selects the 32-bit bank DriverFeatures writes.
    pub fn select_driver_features(&mut self, bank: u32) {
        self.driver_features_sel = bank;
    }

    /// The selected bank of the driver's features (virtio-pci reads it back).
    pub fn driver_features_bank(&self) -> u32 {
        match self.driver_features_sel {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        }
    }

    /// Writes the selected bank of the driver's features. Features may
    /// change only between DRIVER and FEATURES_OK.
    pub fn write_driver_features(&mut self, value: u32) {
        if self.status & (DRIVER | FEATURES_OK | FAILED) != DRIVER {
            tracing::debug!(
                status = self.status,
                "DriverFeatures write outside negotiation"
            );
            return;
        }
        match self.driver_features_sel {
            0 => set_low(&mut self.driver_features, value),
            1 => set_high(&mut self.driver_features, value),
            sel => tracing::debug!(sel, value, "DriverFeatures write to an unknown bank"),
        }
    }

    /// The selected queue.
    pub fn queue_select(&self) -> u32 {
        self.queue_sel
    }

    /// Selects the queue the queue registers address.
    pub fn select_queue(&mut self, queue: u32) {
        self.queue_sel = queue;
    }

    fn selected(&self) -> Option<&QueueRegs> {
        self.queues.get(self.queue_sel as usize)
    }

    /// The selected queue's maximum size (0: no such queue).
    pub fn queue_max_size(&self) -> u16 {
        self.selected().map_or(0, |q| q.max_size)
    }

    /// Reads back a register of the selected queue (0 for a queue that
    /// does not exist).
    pub fn read_queue(&self, field: QueueField) -> u32 {
        let Some(q) = self.selected() else { return 0 };
        match field {
            QueueField::Size => u32::from(q.size),
            QueueField::Ready => u32::from(q.ready),
            QueueField::DescLow => q.desc as u32,
            QueueField::DescHigh => (q.desc >> 32) as u32,
            QueueField::AvailLow => q.avail as u32,
            QueueField::AvailHigh => (q.avail >> 32) as u32,
            QueueField::UsedLow => q.used as u32,
            QueueField::UsedHigh => (q.used >> 32) as u32,
        }
    }

    /// Writes a register of the selected queue. Queues are set up after
    /// FEATURES_OK and before DRIVER_OK; a live queue cannot change.
    pub fn write_queue(&mut self, field: QueueField, value: u32) {
        if self.status & (FEATURES_OK | DRIVER_OK | FAILED) != FEATURES_OK {
            tracing::debug!(
                ?field,
                status = self.status,
                "queue register write outside setup"
            );
            return;
        }
        let sel = self.queue_sel;
        let Some(q) = self.queues.get_mut(sel as usize) else {
            tracing::debug!(
                sel,
                ?field,
                "queue register write for a queue that does not exist"
            );
            return;
        };
        if field == QueueField::Ready {
            if value == 0 {
                q.ready = false;
            } else {
                self.enable_queue();
            }
            return;
        }
        // The spec forbids changing a live queue; ignore rather than corrupt it.
        if q.ready {
            tracing::debug!(sel, ?field, "queue register write while the queue is ready");
            return;
        }
        match field {
            // Out-of-range sizes are kept as given and refused at QueueReady.
            QueueField::Size => q.size = u16::try_from(value).unwrap_or(0),
            QueueField::DescLow => set_low(&mut q.desc, value),
            QueueField::DescHigh => set_high(&mut q.desc, value),
            QueueField::AvailLow => set_low(&mut q.avail, value),
            QueueField::AvailHigh => set_high(&mut q.avail, value),
            QueueField::UsedLow => set_low(&mut q.used, value),
            QueueField::UsedHigh => set_high(&mut q.used, value),
            QueueField::Ready => {}
        }
    }

    /// QueueReady = 1: the queue must make sense now, not at first use.
    fn enable_queue(&mut self) {
        let sel = self.queue_sel;
        let Some(q) = self.queues.get(sel as usize).copied() else {
            return;
        };
        match q.build(&self.mem, false) {
            Ok(_) => {
                if let Some(q) = self.queues.get_mut(sel as usize) {
                    q.ready = true;
                }
            }
            Err(error) => {
                warn_limited!(queue = sel, %error, ?q, "driver gave a broken queue");
                self.interrupt.signal_needs_reset();
            }
        }
    }

    /// A kick of `queue` that no ioeventfd caught.
    pub fn notify(&self, queue: u32) {
        if !self.activated {
            tracing::debug!(queue, "queue kick before DRIVER_OK");
            return;
        }
        match (u16::try_from(queue), &self.notifier) {
            (Ok(queue), Some(notifier)) if (queue as usize) < self.queues.len() => {
                notifier.notify(queue)
            }
            (Ok(queue), None) if (queue as usize) < self.queues.len() => {
                tracing::debug!(queue, "queue kick with no notifier (ioeventfd missing?)")
            }
            _ => tracing::debug!(queue, "kick of a queue that does not exist"),
        }
    }

    /// The driver wrote the device status: 0 resets, other values may only
    /// add bits, in the handshake's order; FEATURES_OK is refused for
    /// features the device cannot take, DRIVER_OK activates.
    pub fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        // NEEDS_RESET belongs to the device; the driver cannot set it.
        let new = value & !NEEDS_RESET;
        if new & old != old {
            tracing::debug!(
                old,
                new,
                "driver tried to clear Status bits without a reset"
            );
            return;
        }
        let added = new & !old;
        if added & FAILED != 0 {
            tracing::info!(status = new, "virtio driver gave up on the device (FAILED)");
        }
        // Each step needs the one before it.
        let order_ok = (new & DRIVER == 0 || new & ACK != 0)
            && (new & FEATURES_OK == 0 || new & DRIVER != 0)
            && (new & DRIVER_OK == 0 || new & FEATURES_OK != 0);
        if !order_ok {
            tracing::debug!(old, new, "Status bits set out of order");
            return;
        }
        let mut new = new;
        if added & FEATURES_OK != 0 && !self.features_acceptable() {
            // The driver reads Status back and sees FEATURES_OK missing.
            warn_limited!(
                driver = self.driver_features,
                offered = self.offered,
                "refusing the driver's features"
            );
            new &= !(FEATURES_OK | DRIVER_OK);
        }
        self.status = new;
        if added & DRIVER_OK != 0 && new & DRIVER_OK != 0 {
            self.activate();
        }
    }

    /// Modern only: VERSION_1 must be accepted, and nothing not offered.
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered == 0 && self.driver_features & features::VERSION_1 != 0
    }

    fn activate(&mut self) {
        let event_idx = self.driver_features & features::EVENT_IDX != 0;
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, regs) in self.queues.iter().enumerate() {
            let queue = if regs.ready {
                match regs.build(&self.mem, event_idx) {
                    Ok(queue) => queue,
                    Err(error) => {
                        warn_limited!(queue = i, %error, "broken queue at DRIVER_OK");
                        self.interrupt.signal_needs_reset();
                        return;
                    }
                }
            } else {
                match Queue::new(regs.max_size) {
                    Ok(queue) => queue,
                    Err(error) => {
                        warn_limited!(queue = i, %error, "device declares an invalid queue");
                        self.interrupt.signal_needs_reset();
                        return;
                    }
                }
            };
            queues.push(queue);
        }
        let interrupt: Arc<dyn VirtioInterrupt> = self.interrupt.clone();
        let ctx = ActivateContext {
            mem: self.mem.clone(),
            queues,
            interrupt,
            acked_features: self.driver_features,
        };
        match lock(&self.device).activate(ctx) {
            Ok(()) => self.activated = true,
            Err(error) => {
                warn_limited!(%error, "virtio device failed to activate");
                self.interrupt.signal_needs_reset();
            }
        }
    }

    /// Resets the device and every register to its power-on value.
    pub fn reset(&mut self) {
        lock(&self.device).reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        for q in &mut self.queues {
            *q = QueueRegs::new(q.max_size);
        }
        self.interrupt.clear();
        self.activated = false;
    }

    /// Reads the device-specific configuration space.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        lock(&self.device).read_config(offset, data);
    }

    /// Writes the device-specific configuration space.
    pub fn write_config(&self, offset: u64, data: &[u8]) {
        lock(&self.device).write_config(offset, data);
    }
}

/// A poisoned device lock means a device panicked; its state is still the
/// best we have, and the VMM must keep serving other devices.
fn lock<'a>(
    device: &'a Mutex<dyn VirtioDevice + 'static>,
) -> MutexGuard<'a, dyn VirtioDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
