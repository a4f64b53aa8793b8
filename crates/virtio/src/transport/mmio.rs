//! The virtio-mmio (version 2) transport: a register decoder over
//! [`VirtioCore`].
//!
//! Queue kicks (writes to QueueNotify) are meant to be caught by an
//! ioeventfd and never reach this code: [`MmioTransport::notify_regions`]
//! tells the VMM where (for queue `i`: `base + QUEUE_NOTIFY_OFFSET`, four
//! bytes, datamatch `i`); the [`QueueNotifier`] is the fallback for a VMM
//! that has none. Interrupts go out on one edge-triggered line, with
//! InterruptStatus telling the driver why.

use std::sync::{Arc, Mutex};

use rvirt_bus::BusDevice;
use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};
use rvirt_platform::{InterruptLine, TriggerMode};
use virtio_bindings::virtio_mmio as reg;

use super::common::{QueueField, VirtioCore};
use super::{InterruptDelivery, InterruptKind, NotifyRegion, TransportInterrupt, VirtioTransport};
use crate::{Memory, VirtioDevice};

pub use super::common::{QueueNotifier, ACK, DRIVER, DRIVER_OK, FAILED, FEATURES_OK, NEEDS_RESET};

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

/// The DSDT node of virtio-mmio slot `index` (`LNRO0005`, as QEMU's
/// microvm and Linux's virtio-mmio ACPI driver name it).
pub fn acpi_device(index: u8, base: u32, len: u32, gsi: u32) -> AcpiDevice {
    AcpiDevice {
        name: format!("VR{index:02X}"),
        hid: HardwareId::String("LNRO0005"),
        uid: index,
        resources: vec![Resource::Memory32 { base, len }, Resource::EdgeIrq(gsi)],
    }
}

/// One virtio-mmio device slot.
pub struct MmioTransport {
    core: VirtioCore,
}

fn queue_field(offset: u32) -> Option<QueueField> {
    Some(match offset {
        reg::VIRTIO_MMIO_QUEUE_NUM => QueueField::Size,
        reg::VIRTIO_MMIO_QUEUE_READY => QueueField::Ready,
        reg::VIRTIO_MMIO_QUEUE_DESC_LOW => QueueField::DescLow,
        reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => QueueField::DescHigh,
        reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => QueueField::AvailLow,
        reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => QueueField::AvailHigh,
        reg::VIRTIO_MMIO_QUEUE_USED_LOW => QueueField::UsedLow,
        reg::VIRTIO_MMIO_QUEUE_USED_HIGH => QueueField::UsedHigh,
        _ => return None,
    })
}

impl MmioTransport {
    /// Puts `device` behind a register file; `irq` is its (edge) line.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: Memory,
        irq: Arc<dyn InterruptLine>,
    ) -> Self {
        let queues = device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue_max_sizes()
            .len();
        let interrupt = Arc::new(TransportInterrupt::new(
            InterruptDelivery::Line(irq),
            queues,
        ));
        MmioTransport {
            core: VirtioCore::new(device, mem, interrupt),
        }
    }

    /// Sets the fallback for kicks that no ioeventfd caught.
    pub fn set_notifier(&mut self, notifier: Arc<dyn QueueNotifier>) {
        self.core.set_notifier(notifier);
    }

    /// The device, for the event loop to call `process_queue` on.
    pub fn device(&self) -> Arc<Mutex<dyn VirtioDevice>> {
        self.core.device()
    }

    /// The interrupt state shared with the device.
    pub fn interrupt(&self) -> Arc<TransportInterrupt> {
        self.core.interrupt().clone()
    }

    /// How many queues (and so ioeventfds) the device has.
    pub fn queue_count(&self) -> usize {
        self.core.queue_count()
    }

    /// The Status register as the driver reads it.
    pub fn status(&self) -> u32 {
        self.core.status()
    }

    /// The features the driver wrote.
    pub fn driver_features(&self) -> u64 {
        self.core.driver_features()
    }

    fn read_register(&self, offset: u32) -> u32 {
        let core = &self.core;
        match offset {
            reg::VIRTIO_MMIO_MAGIC_VALUE => MAGIC_VALUE,
            reg::VIRTIO_MMIO_VERSION => VERSION,
            reg::VIRTIO_MMIO_DEVICE_ID => core.device_type(),
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => core.device_features(),
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => u32::from(core.queue_max_size()),
            reg::VIRTIO_MMIO_QUEUE_READY => core.read_queue(QueueField::Ready),
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => core.interrupt().status(),
            reg::VIRTIO_MMIO_STATUS => core.status(),
            reg::VIRTIO_MMIO_CONFIG_GENERATION => core.interrupt().generation(),
            // No shared memory regions: a length of all ones means "absent".
            reg::VIRTIO_MMIO_SHM_LEN_LOW | reg::VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            _ => {
                tracing::debug!(offset, "read of unknown or write-only virtio-mmio register");
                0
            }
        }
    }

    fn write_register(&mut self, offset: u32, value: u32) {
        let core = &mut self.core;
        if let Some(field) = queue_field(offset) {
            core.write_queue(field, value);
            return;
        }
        match offset {
            reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL => core.select_device_features(value),
            reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL => core.select_driver_features(value),
            reg::VIRTIO_MMIO_DRIVER_FEATURES => core.write_driver_features(value),
            reg::VIRTIO_MMIO_QUEUE_SEL => core.select_queue(value),
            reg::VIRTIO_MMIO_QUEUE_NOTIFY => core.notify(value),
            reg::VIRTIO_MMIO_INTERRUPT_ACK => core.interrupt().ack(value),
            reg::VIRTIO_MMIO_STATUS => core.write_status(value),
            _ => tracing::debug!(
                offset,
                value,
                "write to unknown or read-only virtio-mmio register"
            ),
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.core.read_config(offset - CONFIG_OFFSET, data);
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
            self.core.write_config(offset - CONFIG_OFFSET, data);
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

impl VirtioTransport for MmioTransport {
    fn device(&self) -> Arc<Mutex<dyn VirtioDevice>> {
        self.core.device()
    }

    fn notify_regions(&self) -> Vec<NotifyRegion> {
        (0..self.core.queue_count() as u16)
            .map(|queue| NotifyRegion {
                offset: QUEUE_NOTIFY_OFFSET,
                len: 4,
                datamatch: Some(u64::from(queue)),
                queue,
            })
            .collect()
    }

    fn interrupt_kind(&self) -> InterruptKind {
        InterruptKind::Line(TriggerMode::Edge)
    }
}
