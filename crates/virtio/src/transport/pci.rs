//! The modern virtio-pci transport (virtio 1.x, section 4.1): a PCI
//! function whose vendor-specific capabilities point at the common
//! configuration, notify, ISR and device-configuration structures in a BAR,
//! decoded onto [`VirtioCore`].
//!
//! The layout is QEMU's for a modern device, so a guest sees the same
//! function on either VMM: device ID 0x1040 + type, revision 1, subsystem
//! 1af4:1100 (QEMU's, as for its other devices); BAR 1 (32-bit, 4 KiB) holds the MSI-X table at 0 and the PBA
//! at 0x800; BAR 4 (64-bit prefetchable, 16 KiB) holds the common structure
//! at 0, the ISR at 0x1000, the device configuration at 0x2000 and the
//! notify area at 0x3000 (queue `q` at 0x3000 + 4q). Capabilities, newest
//! first: MSI-X, PCI_CFG access, notify, device, ISR, common (and, behind
//! a PCI Express port, PM and PCI Express before them).
//!
//! Only the modern interface: no legacy I/O BAR and no transitional
//! device IDs (0x1000-0x103f). Every guest rvirt targets (Linux 4.0+,
//! SeaBIOS 1.10+, OVMF) drives modern devices; a legacy-only driver finds
//! no device it knows rather than a broken one.
//!
//! Interrupts: MSI-X vectors per queue and for configuration changes while
//! the driver has MSI-X enabled, the INTx pin (level, lowered by reading
//! the ISR) otherwise ([`InterruptDelivery::Pci`]). Kicks land in the
//! notify area, where the VMM puts one ioeventfd per queue
//! ([`PciTransport::notify_regions`], relative to BAR 4).

use std::sync::{Arc, Mutex};

use rvirt_bus::BusDevice;
use rvirt_pci::bar::BarSpec;
use rvirt_pci::caps::{self, PortType, VENDOR_CAP_ID};
use rvirt_pci::config::{command, overlaps, reg, status, ConfigSpace, Ids};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::msix::{Msix, MsixCapability};
use rvirt_pci::PciFunction;
use rvirt_platform::{InterruptLine, MsiVectors};

use super::common::{QueueField, VirtioCore};
use super::{InterruptDelivery, InterruptKind, NotifyRegion, TransportInterrupt, VirtioTransport};
use crate::{Memory, VirtioDevice};

/// virtio's PCI vendor ID.
pub const VENDOR_ID: u16 = 0x1af4;
/// QEMU's subsystem ID, which its modern virtio functions carry too.
pub const QEMU_SUBSYSTEM: u16 = 0x1100;
/// A modern device's ID is this plus its virtio device type.
pub const DEVICE_ID_BASE: u16 = 0x1040;
/// The BAR of the MSI-X table and PBA.
pub const MSIX_BAR: u8 = 1;
pub const MSIX_BAR_SIZE: u64 = 0x1000;
pub const PBA_OFFSET: u32 = 0x800;
/// The BAR of the virtio structures.
pub const VIRTIO_BAR: u8 = 4;
pub const VIRTIO_BAR_SIZE: u64 = 0x4000;
pub const COMMON_OFFSET: u64 = 0x0;
pub const ISR_OFFSET: u64 = 0x1000;
pub const DEVICE_OFFSET: u64 = 0x2000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
/// Each structure's size in the BAR.
const REGION_SIZE: u64 = 0x1000;
/// Bytes between two queues' notify addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// virtio_pci_cap's cfg_type values.
mod cfg_type {
    pub const COMMON: u8 = 1;
    pub const NOTIFY: u8 = 2;
    pub const ISR: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const PCI_CFG: u8 = 5;
}

/// Offsets in struct virtio_pci_common_cfg.
mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
    /// The structure's size as this transport implements it.
    pub const LEN: usize = 0x40;
}

/// The PCI class QEMU gives each device type.
fn class_of(device_type: u32) -> u32 {
    match device_type {
        1 => 0x020000,  // network: Ethernet
        2 => 0x010000,  // storage: SCSI, as QEMU's virtio-blk-pci
        3 => 0x078000,  // communication: other (virtio-serial)
        18 => 0x098000, // input: other, as QEMU's virtio-input-pci
        // QEMU's PCI_CLASS_OTHERS (0xff) as a class word: base class 0,
        // subclass 0xff (rng, balloon).
        _ => 0x00ff00,
    }
}

/// The MSI-X vectors a device gets: one per queue and one for
/// configuration changes.
pub fn vectors_for(device: &dyn VirtioDevice) -> u16 {
    device.queue_max_sizes().len() as u16 + 1
}

/// Where a function sits, which decides its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciPlacement {
    /// On a conventional bus or the PCI Express root complex's bus
    /// (QEMU makes these conventional devices).
    Conventional,
    /// Behind a PCI Express port: a PCI Express endpoint.
    Express,
}

/// One virtio-pci function.
pub struct PciTransport {
    core: VirtioCore,
    cfg: ConfigSpace,
    msix_cap: MsixCapability,
    msix: Arc<Msix>,
    intx: Arc<IntxPin>,
    /// Offset of the PCI_CFG access capability.
    pci_cfg: u16,
}

impl PciTransport {
    /// `device` as a PCI function: MSI-X through `msi` (at least
    /// [`vectors_for`] vectors), INTx through `intx`.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: Memory,
        msi: Arc<dyn MsiVectors>,
        intx: Arc<IntxPin>,
        placement: PciPlacement,
    ) -> Self {
        let (device_type, vectors, queues) = {
            let d = device.lock().unwrap_or_else(|p| p.into_inner());
            (d.device_type(), vectors_for(&*d), d.queue_max_sizes().len())
        };
        let ids = Ids {
            vendor: VENDOR_ID,
            device: DEVICE_ID_BASE + device_type as u16,
            revision: 1,
            class: class_of(device_type),
            subsystem_vendor: VENDOR_ID,
            subsystem: QEMU_SUBSYSTEM,
        };
        let express = placement == PciPlacement::Express;
        let mut cfg = ConfigSpace::endpoint(&ids, express);
        cfg.set_interrupt_pin(1);
        if express {
            caps::add_pcie(&mut cfg, PortType::Endpoint);
            caps::add_pm(&mut cfg);
        }
        cfg.add_bar(usize::from(MSIX_BAR), BarSpec::mem32(MSIX_BAR_SIZE));
        cfg.add_bar(
            usize::from(VIRTIO_BAR),
            BarSpec::mem64(VIRTIO_BAR_SIZE, true),
        );
        let region = |cfg: &mut ConfigSpace, kind: u8, offset: u64, extra: u8| {
            let at = cfg.add_capability(VENDOR_CAP_ID, 16 + extra);
            cfg.set_u8(at + 2, 16 + extra);
            cfg.set_u8(at + 3, kind);
            cfg.set_u8(at + 4, VIRTIO_BAR);
            cfg.set_u32(at + 8, offset as u32);
            cfg.set_u32(at + 12, REGION_SIZE as u32);
            at
        };
        region(&mut cfg, cfg_type::COMMON, COMMON_OFFSET, 0);
        region(&mut cfg, cfg_type::ISR, ISR_OFFSET, 0);
        region(&mut cfg, cfg_type::DEVICE, DEVICE_OFFSET, 0);
        let notify = region(&mut cfg, cfg_type::NOTIFY, NOTIFY_OFFSET, 4);
        cfg.set_u32(notify + 16, NOTIFY_MULTIPLIER);
        // PCI_CFG access: the driver picks bar, offset and length, then
        // reads or writes the data window.
        let pci_cfg = cfg.add_capability(VENDOR_CAP_ID, 20);
        cfg.set_u8(pci_cfg + 2, 20);
        cfg.set_u8(pci_cfg + 3, cfg_type::PCI_CFG);
        cfg.set_wmask_u8(pci_cfg + 4, 0xff);
        cfg.set_wmask_u32(pci_cfg + 8, u32::MAX);
        cfg.set_wmask_u32(pci_cfg + 12, u32::MAX);
        cfg.set_wmask_u32(pci_cfg + 16, u32::MAX);
        let msix_cap =
            MsixCapability::add(&mut cfg, vectors, (MSIX_BAR, 0), (MSIX_BAR, PBA_OFFSET));
        let msix = Arc::new(Msix::new(vectors, msi));
        let line: Arc<dyn InterruptLine> = intx.clone();
        let interrupt = Arc::new(TransportInterrupt::new(
            InterruptDelivery::Pci {
                msix: msix.clone(),
                intx: line,
            },
            queues,
        ));
        PciTransport {
            core: VirtioCore::new(device, mem, interrupt),
            cfg,
            msix_cap,
            msix,
            intx,
            pci_cfg,
        }
    }

    /// The MSI-X table and PBA.
    pub fn msix(&self) -> &Arc<Msix> {
        &self.msix
    }

    /// The interrupt state shared with the device.
    pub fn interrupt(&self) -> Arc<TransportInterrupt> {
        self.core.interrupt().clone()
    }

    /// Device Status as the driver reads it.
    pub fn status(&self) -> u32 {
        self.core.status()
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.core.driver_features()
    }

    /// A snapshot of the common configuration structure.
    fn common_bytes(&self) -> [u8; common::LEN] {
        let c = &self.core;
        let irq = c.interrupt();
        let sel = c.queue_select();
        let queue = u16::try_from(sel)
            .ok()
            .filter(|&q| usize::from(q) < c.queue_count());
        let mut b = [0u8; common::LEN];
        let mut put = |off: u64, bytes: &[u8]| {
            b[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
        };
        put(
            common::DEVICE_FEATURE_SELECT,
            &c.device_features_select().to_le_bytes(),
        );
        put(common::DEVICE_FEATURE, &c.device_features().to_le_bytes());
        put(
            common::DRIVER_FEATURE_SELECT,
            &c.driver_features_select().to_le_bytes(),
        );
        put(
            common::DRIVER_FEATURE,
            &c.driver_features_bank().to_le_bytes(),
        );
        put(
            common::CONFIG_MSIX_VECTOR,
            &irq.config_vector().to_le_bytes(),
        );
        put(common::NUM_QUEUES, &(c.queue_count() as u16).to_le_bytes());
        put(common::DEVICE_STATUS, &[c.status() as u8]);
        put(common::CONFIG_GENERATION, &[irq.generation() as u8]);
        put(common::QUEUE_SELECT, &(sel as u16).to_le_bytes());
        put(
            common::QUEUE_SIZE,
            &(c.read_queue(QueueField::Size) as u16).to_le_bytes(),
        );
        let vector = queue.map_or(super::NO_VECTOR, |q| irq.queue_vector(q));
        put(common::QUEUE_MSIX_VECTOR, &vector.to_le_bytes());
        put(
            common::QUEUE_ENABLE,
            &(c.read_queue(QueueField::Ready) as u16).to_le_bytes(),
        );
        put(common::QUEUE_NOTIFY_OFF, &queue.unwrap_or(0).to_le_bytes());
        for (off, lo, hi) in [
            (
                common::QUEUE_DESC,
                QueueField::DescLow,
                QueueField::DescHigh,
            ),
            (
                common::QUEUE_DRIVER,
                QueueField::AvailLow,
                QueueField::AvailHigh,
            ),
            (
                common::QUEUE_DEVICE,
                QueueField::UsedLow,
                QueueField::UsedHigh,
            ),
        ] {
            put(off, &c.read_queue(lo).to_le_bytes());
            put(off + 4, &c.read_queue(hi).to_le_bytes());
        }
        b
    }

    fn read_common(&self, offset: u64, data: &mut [u8]) {
        let b = self.common_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = usize::try_from(offset)
                .ok()
                .and_then(|o| b.get(o + i))
                .copied()
                .unwrap_or(0);
        }
    }

    /// A vector the driver may use: one the table has, or none.
    fn valid_vector(&self, v: u16) -> u16 {
        if v == super::NO_VECTOR || v < self.msix.count() {
            v
        } else {
            // Read back as NO_VECTOR: the driver learns it cannot have it.
            super::NO_VECTOR
        }
    }

    fn write_common(&mut self, offset: u64, data: &[u8]) {
        let mut v = [0u8; 8];
        v[..data.len().min(8)].copy_from_slice(&data[..data.len().min(8)]);
        let value = u64::from_le_bytes(v);
        let (lo, hi) = (value as u32, (value >> 32) as u32);
        let c = &mut self.core;
        match (offset, data.len()) {
            (common::DEVICE_FEATURE_SELECT, 4) => c.select_device_features(lo),
            (common::DRIVER_FEATURE_SELECT, 4) => c.select_driver_features(lo),
            (common::DRIVER_FEATURE, 4) => c.write_driver_features(lo),
            (common::CONFIG_MSIX_VECTOR, 2) => {
                let vector = self.valid_vector(value as u16);
                self.core.interrupt().set_config_vector(vector);
            }
            (common::DEVICE_STATUS, 1) => c.write_status(lo),
            (common::QUEUE_SELECT, 2) => c.select_queue(lo),
            (common::QUEUE_SIZE, 2) => c.write_queue(QueueField::Size, lo),
            (common::QUEUE_MSIX_VECTOR, 2) => {
                let vector = self.valid_vector(value as u16);
                if let Ok(q) = u16::try_from(self.core.queue_select()) {
                    self.core.interrupt().set_queue_vector(q, vector);
                }
            }
            (common::QUEUE_ENABLE, 2) if lo == 1 => c.write_queue(QueueField::Ready, 1),
            (common::QUEUE_DESC, 4 | 8) => {
                queue_address(c, QueueField::DescLow, lo, hi, data.len())
            }
            (common::QUEUE_DRIVER, 4 | 8) => {
                queue_address(c, QueueField::AvailLow, lo, hi, data.len())
            }
            (common::QUEUE_DEVICE, 4 | 8) => {
                queue_address(c, QueueField::UsedLow, lo, hi, data.len())
            }
            (o, 4) if o == common::QUEUE_DESC + 4 => c.write_queue(QueueField::DescHigh, lo),
            (o, 4) if o == common::QUEUE_DRIVER + 4 => c.write_queue(QueueField::AvailHigh, lo),
            (o, 4) if o == common::QUEUE_DEVICE + 4 => c.write_queue(QueueField::UsedHigh, lo),
            _ => tracing::debug!(
                offset,
                len = data.len(),
                "write to a read-only or unknown virtio-pci common register"
            ),
        }
    }

    fn read_virtio(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            o if o < ISR_OFFSET => self.read_common(o - COMMON_OFFSET, data),
            o if o < DEVICE_OFFSET => {
                data.fill(0);
                if o == ISR_OFFSET {
                    // Reading the ISR acknowledges it and lowers INTx.
                    let irq = self.core.interrupt();
                    let isr = irq.status();
                    irq.ack(isr);
                    data[0] = isr as u8;
                }
            }
            o if o < NOTIFY_OFFSET => self.core.read_config(o - DEVICE_OFFSET, data),
            _ => data.fill(0),
        }
    }

    fn write_virtio(&mut self, offset: u64, data: &[u8]) {
        match offset {
            o if o < ISR_OFFSET => self.write_common(o - COMMON_OFFSET, data),
            o if o < DEVICE_OFFSET => tracing::debug!(offset, "write to the read-only ISR"),
            o if o < NOTIFY_OFFSET => self.core.write_config(o - DEVICE_OFFSET, data),
            o if o < NOTIFY_OFFSET + REGION_SIZE => {
                // A kick no ioeventfd caught.
                let queue = (o - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER);
                self.core.notify(queue as u32);
            }
            _ => tracing::debug!(offset, "write past the virtio-pci structures"),
        }
    }

    fn access_bar(&mut self, bar: u8, offset: u64, data: &mut [u8], write: bool) {
        match bar {
            MSIX_BAR => {
                if let Some(o) = self.msix_cap.in_table(bar, offset) {
                    if write {
                        self.msix.write_table(o, data);
                    } else {
                        self.msix.read_table(o, data);
                    }
                } else if let Some(o) = self.msix_cap.in_pba(bar, offset) {
                    if !write {
                        self.msix.read_pba(o, data);
                    }
                } else if !write {
                    data.fill(0);
                }
            }
            VIRTIO_BAR if write => self.write_virtio(offset, data),
            VIRTIO_BAR => self.read_virtio(offset, data),
            _ if !write => data.fill(0xff),
            _ => {}
        }
    }

    /// The PCI_CFG capability's window, if it names a usable access.
    fn pci_cfg_access(&self) -> Option<(u8, u64, usize)> {
        let bar = self.cfg.read_u8(self.pci_cfg + 4);
        let offset = u64::from(self.cfg.read_u32(self.pci_cfg + 8));
        let len = self.cfg.read_u32(self.pci_cfg + 12) as usize;
        let ok = matches!(len, 1 | 2 | 4) && offset.is_multiple_of(len as u64);
        ok.then_some((bar, offset, len))
    }
}

fn queue_address(c: &mut VirtioCore, low: QueueField, lo: u32, hi: u32, len: usize) {
    c.write_queue(low, lo);
    if len == 8 {
        let high = match low {
            QueueField::DescLow => QueueField::DescHigh,
            QueueField::AvailLow => QueueField::AvailHigh,
            _ => QueueField::UsedHigh,
        };
        c.write_queue(high, hi);
    }
}

impl PciFunction for PciTransport {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        let len = data.len();
        if overlaps(offset, len, self.pci_cfg + 16, 4) {
            let mut window = [0u8; 4];
            if let Some((bar, off, n)) = self.pci_cfg_access() {
                self.access_bar(bar, off, &mut window[..n], false);
            }
            self.cfg.set_bytes(self.pci_cfg + 16, &window);
        }
        self.cfg.read(offset, data);
        if overlaps(offset, len, reg::STATUS, 1) && self.intx.level() {
            data[usize::from(reg::STATUS - offset)] |= status::INTERRUPT as u8;
        }
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        let len = data.len();
        if overlaps(offset, len, reg::COMMAND, 2) {
            let cmd = self.cfg.read_u16(reg::COMMAND);
            self.intx.set_disabled(cmd & command::INTX_DISABLE != 0);
        }
        if self.msix_cap.control_written(offset, len) {
            let (enabled, masked) = self.msix_cap.control(&self.cfg);
            let was = self.msix.enabled();
            self.msix.set_control(enabled, masked);
            if enabled && !was {
                // From now on interrupts are messages: INTx goes quiet.
                let _ = self.intx.lower();
            }
        }
        if overlaps(offset, len, self.pci_cfg + 16, 4) {
            if let Some((bar, off, n)) = self.pci_cfg_access() {
                let mut window = [0u8; 4];
                self.cfg.read(self.pci_cfg + 16, &mut window);
                self.access_bar(bar, off, &mut window[..n], true);
            }
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        self.access_bar(bar, offset, data, false);
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        let mut buf = [0u8; 8];
        let n = data.len().min(8);
        buf[..n].copy_from_slice(&data[..n]);
        self.access_bar(bar, offset, &mut buf[..n], true);
    }
}

/// The virtio structures' BAR as a plain bus device, for tests and fuzzing
/// without a PCI segment.
impl BusDevice for PciTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.read_virtio(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.write_virtio(offset, data);
    }
}

impl VirtioTransport for PciTransport {
    fn device(&self) -> Arc<Mutex<dyn VirtioDevice>> {
        self.core.device()
    }

    /// Relative to BAR 4: queue `q` at the notify area + 4q, any width,
    /// any value (QEMU's layout; KVM matches them without decoding the
    /// instruction).
    fn notify_regions(&self) -> Vec<NotifyRegion> {
        (0..self.core.queue_count() as u16)
            .map(|queue| NotifyRegion {
                offset: NOTIFY_OFFSET + u64::from(queue) * u64::from(NOTIFY_MULTIPLIER),
                len: 0,
                datamatch: None,
                queue,
            })
            .collect()
    }

    fn interrupt_kind(&self) -> InterruptKind {
        InterruptKind::Msi {
            vectors: self.msix.count(),
        }
    }
}

#[cfg(test)]
#[path = "pci_tests.rs"]
mod tests;
