//! The parallel ports (`-parallel`, `-device isa-parallel`): opened once
//! on their chardevs, their ports and ISA IRQ claimed from the allocator,
//! and put on each boot's port bus (registers at reset, the host side
//! kept) with a fresh interrupt line and a DSDT node.

use std::sync::{Arc, Mutex};

use rvirt_bus::Bus;
use rvirt_devices::parallel::{self, Parallel};
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::layout::irqs;
use rvirt_machine::{Machine, SystemAllocator};
use rvirt_vmm_config::VmConfig;

use crate::chardev::Chardev;
use crate::interrupts::IrqFd;
use crate::VmmError;

struct Port {
    device: Arc<Mutex<Parallel>>,
    /// Its interrupt line, switched to each boot's irqfd.
    line: Arc<super::legacy::SwitchedLine>,
    chardev: Chardev,
    index: u32,
    iobase: u16,
    irq: u32,
}

/// The VM's parallel ports, which live as long as the VMM.
#[derive(Default)]
pub(crate) struct ParallelPorts {
    ports: Vec<Port>,
}

impl ParallelPorts {
    /// Opens each port's chardev and claims its ports and IRQ.
    pub(crate) fn new(cfg: &VmConfig, alloc: &mut SystemAllocator) -> Result<Self, VmmError> {
        let mut ports: Vec<Port> = Vec::new();
        for p in &cfg.parallels {
            alloc
                .reserve_pio(p.iobase, parallel::LEN)
                .map_err(VmmError::Placement)?;
            // IRQ 7 is no other device's: take it out of what the
            // allocator hands out (PCI's ISA routes, virtio-mmio), once
            // however many ports share it.
            let shared = irqs::LEGACY.contains(&p.irq) || ports.iter().any(|q| q.irq == p.irq);
            if !shared {
                alloc.reserve_gsis(p.irq, 1).map_err(VmmError::Placement)?;
            }
            let chardev =
                Chardev::open(&p.chardev, &p.backend).map_err(|source| VmmError::Chardev {
                    option: "-parallel",
                    source,
                })?;
            let out = chardev.writer().map_err(|source| VmmError::Setup {
                what: "parallel port output",
                source,
            })?;
            let line = Arc::new(super::legacy::SwitchedLine::default());
            let device = Arc::new(Mutex::new(Parallel::new(Some(line.clone()), out)));
            ports.push(Port {
                device,
                line,
                chardev,
                index: p.index,
                iobase: p.iobase,
                irq: p.irq,
            });
        }
        Ok(ParallelPorts { ports })
    }

    /// `query-chardev` entries for the ports' chardevs (a pty's
    /// `pty:/dev/pts/N`, which libvirt reads into the live XML).
    pub(crate) fn chardev_infos(&self) -> Vec<rvirt_qmp::ChardevInfo> {
        self.ports
            .iter()
            .map(|p| rvirt_qmp::ChardevInfo {
                label: p.chardev.label().to_string(),
                filename: p.chardev.filename(),
                frontend_open: true,
            })
            .collect()
    }

    /// Puts the ports on a new machine's port bus.
    pub(crate) fn attach(
        &self,
        machine: &Machine,
        pio: &Bus,
        platform: &mut AcpiConfig,
    ) -> Result<(), VmmError> {
        for p in &self.ports {
            let irq = IrqFd::new(machine.vm_fd(), p.irq).map_err(|source| VmmError::Setup {
                what: "an irqfd",
                source,
            })?;
            p.line.set(Arc::new(irq));
            p.device.lock().unwrap_or_else(|e| e.into_inner()).reset();
            // The ports were reserved in the allocator: an overlap here is a
            // bug in the layout.
            pio.insert(
                p.device.clone(),
                u64::from(p.iobase),
                u64::from(parallel::LEN),
            )
            .expect("parallel port assignments overlap");
            platform.devices.push(Box::new(parallel::acpi_device(
                p.index as u8 + 1,
                p.iobase,
                p.irq,
            )));
        }
        Ok(())
    }
}
