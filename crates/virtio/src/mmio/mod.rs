//! The virtio-mmio (version 2) transport: a register file in front of a
//! [`VirtioDevice`].
//!
//! The driver negotiates features, sets up queues and flips Status bits here,
//! on a vCPU thread, through the bus. When it sets DRIVER_OK the transport
//! builds `virtio_queue::Queue`s from the validated registers and hands them
//! to the device. Queue kicks (writes to QueueNotify) are meant to be caught
//! by an ioeventfd and never reach this code; the [`QueueNotifier`] is the
//! fallback for a VMM that has none.
//!
//! ioeventfd wiring: for queue `i` of the device at `base`, register an
//! `EventFd` with `KVM_IOEVENTFD` at address `base + QUEUE_NOTIFY_OFFSET`,
//! length 4, with datamatch `i` (`IoEventAddress::Mmio` and
//! `Datamatch32(i)` in kvm-ioctls), and call
//! [`VirtioDevice::process_queue`]`(i)` on the event-loop thread when it
//! becomes readable.

mod interrupt;
#[cfg(test)]
mod tests;

pub use interrupt::MmioInterrupt;

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_bus::BusDevice;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use crate::{features, ActivateContext, IrqTrigger, Memory, VirtioDevice, VirtioInterrupt};

/// "virt" in little endian.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// The modern (virtio 1.x) register layout.
pub const VERSION: u32 = 2;
/// Reported VendorID; QEMU's value, which Linux does not interpret.
pub const VENDOR_ID: u32 = 0x554d_4551;
/// Size of one virtio-mmio slot.
pub const MMIO_SIZE: u64 = 0x1000;
/// Offset of QueueNotify, where the VMM puts each queue's ioeventfd.
pub const QUEUE_NOTIFY_OFFSET: u64 = reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
/// Offset of the device-specific configuration space.
pub const CONFIG_OFFSET: u64 = reg::VIRTIO_MMIO_CONFIG as u64;

const ACK: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
const FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
const FAILED: u32 = VIRTIO_CONFIG_S_FAILED;
const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;

/// Called for a QueueNotify write that no ioeventfd caught.
pub trait QueueNotifier: Send + Sync {
    /// The driver kicked queue `queue`.
    fn notify(&self, queue: u16);
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

/// One virtio-mmio device slot.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: Memory,
    interrupt: Arc<MmioInterrupt>,
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

impl MmioTransport {
    /// Puts `device` behind a register file; `irq` raises its interrupt.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: Memory,
        irq: Arc<dyn IrqTrigger>,
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
        MmioTransport {
            device,
            mem,
            interrupt: Arc::new(MmioInterrupt::new(irq)),
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

    /// The device, for the event loop to call `process_queue` on.
    pub fn device(&self) -> Arc<Mutex<dyn VirtioDevice>> {
        self.device.clone()
    }

    /// The interrupt state shared with the device.
    pub fn interrupt(&self) -> Arc<MmioInterrupt> {
        self.interrupt.clone()
    }

    /// How many queues (and so ioeventfds) the device has.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The Status register as the driver reads it.
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

    fn selected_queue(&mut self) -> Option<&mut QueueRegs> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn read_register(&self, offset: u32) -> u32 {
        let queue = self.queues.get(self.queue_sel as usize);
        match offset {
            reg::VIRTIO_MMIO_MAGIC_VALUE => MAGIC_VALUE,
            reg::VIRTIO_MMIO_VERSION => VERSION,
            reg::VIRTIO_MMIO_DEVICE_ID => self.device_type,
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size)),
            reg::VIRTIO_MMIO_QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready)),
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            reg::VIRTIO_MMIO_STATUS => self.status(),
            reg::VIRTIO_MMIO_CONFIG_GENERATION => self.interrupt.generation(),
            // No shared memory regions: a length of all ones means "absent".
            reg::VIRTIO_MMIO_SHM_LEN_LOW | reg::VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            _ => {
                tracing::debug!(offset, "read of unknown or write-only virtio-mmio register");
                0
            }
        }
    }

    fn write_register(&mut self, offset: u32, value: u32) {
        match offset {
            reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::VIRTIO_MMIO_DRIVER_FEATURES => self.write_driver_features(value),
            reg::VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            reg::VIRTIO_MMIO_QUEUE_NUM
            | reg::VIRTIO_MMIO_QUEUE_READY
            | reg::VIRTIO_MMIO_QUEUE_DESC_LOW
            | reg::VIRTIO_MMIO_QUEUE_DESC_HIGH
            | reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | reg::VIRTIO_MMIO_QUEUE_USED_LOW
            | reg::VIRTIO_MMIO_QUEUE_USED_HIGH => self.write_queue_register(offset, value),
            reg::VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(value),
            reg::VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(value),
            reg::VIRTIO_MMIO_STATUS => self.write_status(value),
            _ => tracing::debug!(
                offset,
                value,
                "write to unknown or read-only virtio-mmio register"
            ),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        // Features may change only between DRIVER and FEATURES_OK.
        if self.status & (DRIVER | FEATURES_OK | FAILED) != DRIVER {
            tracing::debug!(
                status = self.status,
                "DriverFeatures write outside negotiation"
            );
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features =
                    (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            sel => tracing::debug!(sel, value, "DriverFeatures write to an unknown bank"),
        }
    }

    fn write_queue_register(&mut self, offset: u32, value: u32) {
        // Queues are set up after FEATURES_OK and before DRIVER_OK.
        if self.status & (FEATURES_OK | DRIVER_OK | FAILED) != FEATURES_OK {
            tracing::debug!(
                offset,
                status = self.status,
                "queue register write outside setup"
            );
            return;
        }
        let sel = self.queue_sel;
        let Some(q) = self.selected_queue() else {
            tracing::debug!(
                sel,
                offset,
                "queue register write for a queue that does not exist"
            );
            return;
        };
        if offset == reg::VIRTIO_MMIO_QUEUE_READY {
            if value == 0 {
                q.ready = false;
            } else {
                self.enable_queue();
            }
            return;
        }
        // The spec forbids changing a live queue; ignore rather than corrupt it.
        if q.ready {
            tracing::debug!(sel, offset, "queue register write while the queue is ready");
            return;
        }
        let set_low = |field: &mut u64| *field = (*field & !0xffff_ffff) | u64::from(value);
        let set_high = |field: &mut u64| *field = (*field & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            // Out-of-range sizes are kept as given and refused at QueueReady.
            reg::VIRTIO_MMIO_QUEUE_NUM => q.size = u16::try_from(value).unwrap_or(0),
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => set_low(&mut q.desc),
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => set_high(&mut q.desc),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => set_low(&mut q.avail),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => set_high(&mut q.avail),
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => set_low(&mut q.used),
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => set_high(&mut q.used),
            _ => {}
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
                if let Some(q) = self.selected_queue() {
                    q.ready = true;
                }
            }
            Err(error) => {
                tracing::warn!(queue = sel, %error, ?q, "driver gave a broken queue");
                self.interrupt.signal_needs_reset();
            }
        }
    }

    fn notify(&self, value: u32) {
        if !self.activated {
            tracing::debug!(value, "queue kick before DRIVER_OK");
            return;
        }
        match (u16::try_from(value), &self.notifier) {
            (Ok(queue), Some(notifier)) if (queue as usize) < self.queues.len() => {
                notifier.notify(queue)
            }
            (Ok(queue), None) if (queue as usize) < self.queues.len() => {
                tracing::debug!(queue, "queue kick with no notifier (ioeventfd missing?)")
            }
            _ => tracing::debug!(value, "kick of a queue that does not exist"),
        }
    }

    fn write_status(&mut self, value: u32) {
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
            tracing::warn!(
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
                        tracing::warn!(queue = i, %error, "broken queue at DRIVER_OK");
                        self.interrupt.signal_needs_reset();
                        return;
                    }
                }
            } else {
                match Queue::new(regs.max_size) {
                    Ok(queue) => queue,
                    Err(error) => {
                        tracing::warn!(queue = i, %error, "device declares an invalid queue");
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
                tracing::warn!(%error, "virtio device failed to activate");
                self.interrupt.signal_needs_reset();
            }
        }
    }

    fn reset(&mut self) {
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
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            lock(&self.device).read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            tracing::debug!(
                offset,
                len = data.len(),
                "unaligned virtio-mmio register read"
            );
            data.fill(0);
            return;
        }
        let value = self.read_register(offset as u32);
        data.copy_from_slice(&value.to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            lock(&self.device).write_config(offset - CONFIG_OFFSET, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            tracing::debug!(
                offset,
                len = data.len(),
                "non-32-bit virtio-mmio register write"
            );
            return;
        };
        if !offset.is_multiple_of(4) {
            tracing::debug!(offset, "unaligned virtio-mmio register write");
            return;
        }
        self.write_register(offset as u32, u32::from_le_bytes(bytes));
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
