//! The platform's interrupt traits (`rvirt_platform::interrupt`) on KVM:
//! devices raise lines and vectors, this module turns them into irqfd
//! writes and MSI routes.
//!
//! - [`IrqFd`]: an edge-triggered line, an eventfd registered with
//!   `KVM_IRQFD` on a GSI; raising it is one write and never leaves the
//!   kernel (ISA devices, virtio-mmio).
//! - [`KvmLevelLine`]: a level-triggered line driven with `KVM_IRQ_LINE`
//!   (the ACPI SCI): exact, and rare enough that the ioctl costs nothing.
//! - [`ResampledLine`]: a level-triggered line as an irqfd with a resample
//!   eventfd (PCI INTx's PIRQ pins): KVM asserts the line on the write
//!   and lowers it at the guest's EOI, then signals the resample fd; the
//!   event loop ([`ResampledLine::subscriber`]) raises it again while the
//!   device still holds it high. Registering one waits for an SRCU grace
//!   period of the VM's irq routing (`synchronize_srcu` in KVM's irqfd
//!   resampler set-up): measured here as +5-7 ms to the first guest line
//!   when the SCI used it. So a line registers with KVM when it is first
//!   raised, not at boot: guests that use MSI-X (all of today's) never
//!   pay it.
//! - [`MsiRoutes`]: MSI vectors, each an irqfd on a GSI whose entry in the
//!   VM's GSI routing table carries the message the guest programmed.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use rvirt_platform::{InterruptLine, MsiMessage, MsiVectors, TriggerMode};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::event_loop::Subscriber;

fn kvm(e: kvm_ioctls::Error) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

/// An edge-triggered line: an eventfd registered as an irqfd on `gsi`.
pub(crate) struct IrqFd {
    evt: EventFd,
}

impl IrqFd {
    /// Creates the eventfd and registers it on `gsi`.
    pub(crate) fn new(vm: &VmFd, gsi: u32) -> io::Result<Self> {
        let evt = EventFd::new(EFD_NONBLOCK)?;
        vm.register_irqfd(&evt, gsi).map_err(kvm)?;
        Ok(IrqFd { evt })
    }
}

impl InterruptLine for IrqFd {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Edge
    }

    fn raise(&self) -> io::Result<()> {
        self.evt.write(1)
    }
}

/// A level-triggered line driven with `KVM_IRQ_LINE`.
pub(crate) struct KvmLevelLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl KvmLevelLine {
    pub(crate) fn new(vm: Arc<VmFd>, gsi: u32) -> Self {
        KvmLevelLine { vm, gsi }
    }
}

impl InterruptLine for KvmLevelLine {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }

    fn raise(&self) -> io::Result<()> {
        self.vm.set_irq_line(self.gsi, true).map_err(kvm)
    }

    fn lower(&self) -> io::Result<()> {
        self.vm.set_irq_line(self.gsi, false).map_err(kvm)
    }
}

/// A level-triggered line as an irqfd with a resample eventfd.
pub(crate) struct ResampledLine {
    trigger: EventFd,
    resample: EventFd,
    /// The level the device holds.
    high: AtomicBool,
    /// Where to register the pair on first use; `None` once registered
    /// (or for a line that is not KVM's, in tests).
    pending: Mutex<Option<(Arc<VmFd>, u32)>>,
}

impl ResampledLine {
    /// The pair for `gsi` (an IOAPIC pin, which must be level-triggered in
    /// the guest's routing: `_PRT`, the MADT), registered with KVM when
    /// the line is first raised.
    pub(crate) fn new(vm: Arc<VmFd>, gsi: u32) -> io::Result<Arc<Self>> {
        Ok(Arc::new(ResampledLine {
            trigger: EventFd::new(EFD_NONBLOCK)?,
            resample: EventFd::new(EFD_NONBLOCK)?,
            high: AtomicBool::new(false),
            pending: Mutex::new(Some((vm, gsi))),
        }))
    }

    /// Registers the pair with KVM if that is still to do.
    fn register(&self) -> io::Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((vm, gsi)) = pending.as_ref() {
            vm.register_irqfd_with_resample(&self.trigger, &self.resample, *gsi)
                .map_err(kvm)?;
            *pending = None;
        }
        Ok(())
    }

    /// What the event loop runs when the guest has EOI'd the line.
    pub(crate) fn subscriber(self: &Arc<Self>) -> Box<dyn Subscriber> {
        Box::new(Resampler(self.clone()))
    }
}

impl InterruptLine for ResampledLine {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }

    fn raise(&self) -> io::Result<()> {
        self.register()?;
        self.high.store(true, Ordering::Release);
        self.trigger.write(1)
    }

    fn lower(&self) -> io::Result<()> {
        // KVM lowers the line itself at the EOI; the resample then finds
        // the device low and leaves it so.
        self.high.store(false, Ordering::Release);
        Ok(())
    }
}

/// The event-loop side of a [`ResampledLine`].
struct Resampler(Arc<ResampledLine>);

impl Subscriber for Resampler {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        vec![(self.0.resample.as_raw_fd(), 0)]
    }

    fn handle(&mut self, _token: u32) {
        // Nonblocking: a spurious wake-up reads EAGAIN.
        if self.0.resample.read().is_ok() && self.0.high.load(Ordering::Acquire) {
            if let Err(error) = self.0.trigger.write(1) {
                tracing::warn!(%error, "cannot raise a resampled interrupt line");
            }
        }
    }
}

/// The VM's GSI routing table: KVM replaces it whole on every change, so
/// the default routes of the PIC and IOAPIC pins are kept here beside the
/// MSI routes.
pub(crate) struct GsiRouting {
    vm: Arc<VmFd>,
    msi: Mutex<BTreeMap<u32, MsiMessage>>,
}

/// The IOAPIC's pins, routed as KVM does by default.
const IOAPIC_PINS: u32 = 24;

impl GsiRouting {
    pub(crate) fn new(vm: Arc<VmFd>) -> Arc<Self> {
        Arc::new(GsiRouting {
            vm,
            msi: Mutex::new(BTreeMap::new()),
        })
    }

    fn irqchip(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
        let mut e = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_IRQCHIP,
            ..Default::default()
        };
        e.u.irqchip.irqchip = chip;
        e.u.irqchip.pin = pin;
        e
    }

    /// Routes `gsi` to `message`, or removes its route (`None`), and
    /// installs the whole table.
    pub(crate) fn set(&self, gsi: u32, message: Option<MsiMessage>) -> io::Result<()> {
        let mut msi = self.msi.lock().unwrap_or_else(|p| p.into_inner());
        match message {
            Some(m) => msi.insert(gsi, m),
            None => msi.remove(&gsi),
        };
        let mut entries = Vec::new();
        // KVM's default table: GSIs 0-15 on both PICs (except 2, the
        // cascade), and every GSI on the IOAPIC pin of the same number.
        for gsi in 0..16 {
            if gsi != 2 {
                let (chip, pin) = if gsi < 8 {
                    (KVM_IRQCHIP_PIC_MASTER, gsi)
                } else {
                    (KVM_IRQCHIP_PIC_SLAVE, gsi - 8)
                };
                entries.push(Self::irqchip(gsi, chip, pin));
            }
        }
        for gsi in 0..IOAPIC_PINS {
            entries.push(Self::irqchip(gsi, KVM_IRQCHIP_IOAPIC, gsi));
        }
        for (&gsi, m) in msi.iter() {
            let mut e = kvm_irq_routing_entry {
                gsi,
                type_: KVM_IRQ_ROUTING_MSI,
                ..Default::default()
            };
            e.u.msi.address_lo = m.address as u32;
            e.u.msi.address_hi = (m.address >> 32) as u32;
            e.u.msi.data = m.data;
            entries.push(e);
        }
        let table =
            KvmIrqRouting::from_entries(&entries).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.vm.set_gsi_routing(&table).map_err(kvm)
    }
}

/// A device's MSI vectors: one GSI and irqfd per vector, routed through
/// the VM's [`GsiRouting`].
pub(crate) struct MsiRoutes {
    routing: Arc<GsiRouting>,
    /// Per vector: its GSI and irqfd.
    vectors: Vec<(u32, EventFd)>,
}

impl MsiRoutes {
    /// One vector per GSI in `gsis` (from the machine's allocator).
    pub(crate) fn new(vm: &VmFd, routing: Arc<GsiRouting>, gsis: &[u32]) -> io::Result<Self> {
        let mut vectors = Vec::with_capacity(gsis.len());
        for &gsi in gsis {
            let evt = EventFd::new(EFD_NONBLOCK)?;
            vm.register_irqfd(&evt, gsi).map_err(kvm)?;
            vectors.push((gsi, evt));
        }
        Ok(MsiRoutes { routing, vectors })
    }

    /// The device left the machine: every vector's route removed and its
    /// irqfd unregistered, so nothing of it can interrupt the guest.
    pub(crate) fn release(&self) {
        for (gsi, evt) in &self.vectors {
            if let Err(error) = self.routing.set(*gsi, None) {
                tracing::warn!(%error, gsi, "cannot remove an MSI route");
            }
            if let Err(error) = self.routing.vm.unregister_irqfd(evt, *gsi) {
                tracing::warn!(%error, gsi, "cannot unregister an irqfd");
            }
        }
    }

    fn vector(&self, vector: u16) -> io::Result<&(u32, EventFd)> {
        self.vectors
            .get(usize::from(vector))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such MSI vector"))
    }
}

impl MsiVectors for MsiRoutes {
    fn count(&self) -> u16 {
        self.vectors.len() as u16
    }

    fn route(&self, vector: u16, message: Option<MsiMessage>) -> io::Result<()> {
        let (gsi, _) = self.vector(vector)?;
        self.routing.set(*gsi, message)
    }

    fn raise(&self, vector: u16) -> io::Result<()> {
        self.vector(vector)?.1.write(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::Kvm;

    /// A VM with the in-kernel irqchip (the tests need /dev/kvm, as the
    /// boot tests do).
    fn vm() -> Arc<VmFd> {
        let vm = Kvm::new().expect("/dev/kvm").create_vm().unwrap();
        vm.create_irq_chip().unwrap();
        Arc::new(vm)
    }

    #[test]
    fn msi_vectors_route_and_fire_through_kvm() {
        let vm = vm();
        let routing = GsiRouting::new(vm.clone());
        let msi = MsiRoutes::new(&vm, routing, &[24, 25]).unwrap();
        assert_eq!(msi.count(), 2);
        let message = MsiMessage {
            address: 0xfee0_0000,
            data: 0x41,
        };
        msi.route(1, Some(message)).unwrap();
        msi.raise(1).unwrap();
        msi.route(1, None).unwrap();
        assert!(msi.raise(2).is_err(), "past the last vector");
        assert!(msi.route(5, Some(message)).is_err());
    }

    #[test]
    fn lines_register_with_kvm() {
        let vm = vm();
        let edge = IrqFd::new(&vm, 5).unwrap();
        edge.raise().unwrap();
        assert_eq!(edge.trigger_mode(), TriggerMode::Edge);
        let level = ResampledLine::new(vm.clone(), 10).unwrap();
        assert!(
            level.pending.lock().unwrap().is_some(),
            "not registered yet"
        );
        level.raise().unwrap();
        assert!(level.pending.lock().unwrap().is_none());
        level.lower().unwrap();
        level.raise().unwrap();
        let sci = KvmLevelLine::new(vm.clone(), 9);
        sci.raise().unwrap();
        sci.lower().unwrap();
    }

    /// The resample half without KVM (which would consume the trigger's
    /// writes itself): after an EOI the line is raised again only while
    /// the device holds it high.
    #[test]
    fn a_resample_re_raises_only_a_held_line() {
        let line = Arc::new(ResampledLine {
            trigger: EventFd::new(EFD_NONBLOCK).unwrap(),
            resample: EventFd::new(EFD_NONBLOCK).unwrap(),
            high: AtomicBool::new(false),
            pending: Mutex::new(None),
        });
        let mut sub = line.subscriber();
        line.raise().unwrap();
        assert_eq!(line.trigger.read().unwrap(), 1);
        line.resample.write(1).unwrap();
        sub.handle(0);
        assert_eq!(line.trigger.read().unwrap(), 1, "raised again");
        line.lower().unwrap();
        line.resample.write(1).unwrap();
        sub.handle(0);
        assert!(line.trigger.read().is_err(), "left low");
    }
}
