//! The legacy PC devices: COM1-COM4, the i8042, the CMOS, ACPI PM, the
//! reset register, the POST port and pvpanic, at the places and on the
//! IRQs the PC's design fixes (claimed through the machine's allocator).

use std::sync::{Arc, Mutex};

use rvirt_bus::{Bus, SharedDevice};
use rvirt_devices::{
    AcpiPm, Cmos, DebugCon, LineTrigger, PostPort, PvPanic, ResetControl, Serial, I8042,
};
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::layout::{irqs, ports};
use rvirt_machine::{Machine, SystemAllocator};
use rvirt_platform::{InterruptLine, VmControl, VmRequest};
use rvirt_vmm_config::VmConfig;

use crate::chardev::Chardev;
use crate::events::BootEvents;
use crate::interrupts::{IrqFd, KvmLevelLine};
use crate::VmmError;

/// COM1..COM4: (port, IRQ).
const COM_PORTS: [(u16, u32); 4] = [
    (ports::COM1, irqs::COM1),
    (ports::COM2, irqs::COM2),
    (ports::COM3, irqs::COM3),
    (ports::COM4, irqs::COM4),
];

/// The fixed ports of the devices every machine has: (base, length).
const FIXED_PORTS: [(u16, u16); 4] = [
    (ports::I8042, ports::I8042_LEN),
    (ports::CMOS, ports::CMOS_LEN),
    (ports::ACPI_PM, rvirt_devices::acpi_pm::LEN as u16),
    (ports::POST, 1),
];

struct SerialPort {
    device: Arc<Mutex<Serial>>,
    /// The line the UART raises: switched to each boot's irqfd.
    line: Arc<SwitchedLine>,
    chardev: Chardev,
    port: u16,
    irq: u32,
}

/// An interrupt line whose far end is replaced at every boot (a new VM fd,
/// a new irqfd), for devices that live across boots.
#[derive(Default)]
pub(super) struct SwitchedLine(Mutex<Option<Arc<dyn InterruptLine>>>);

impl SwitchedLine {
    pub(super) fn set(&self, line: Arc<dyn InterruptLine>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
    }
}

impl InterruptLine for SwitchedLine {
    fn trigger_mode(&self) -> rvirt_platform::TriggerMode {
        rvirt_platform::TriggerMode::Edge
    }

    fn raise(&self) -> std::io::Result<()> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(line) => line.raise(),
            None => Ok(()),
        }
    }
}

/// Where a device that lives across boots sends its machine requests: each
/// boot's events.
#[derive(Default)]
struct SwitchedControl(Mutex<Option<Arc<BootEvents>>>);

impl SwitchedControl {
    fn set(&self, control: Arc<BootEvents>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(control);
    }
}

impl VmControl for SwitchedControl {
    fn request(&self, request: VmRequest) {
        if let Some(c) = &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            c.request(request);
        }
    }
}

/// The i8042 and the far ends of its lines, switched at every boot. It
/// lives as long as the VMM because the console's input reaches it from
/// the VNC server, which outlives boots.
struct Keyboard {
    device: Arc<Mutex<I8042>>,
    kbd: Arc<SwitchedLine>,
    aux: Arc<SwitchedLine>,
    control: Arc<SwitchedControl>,
}

/// Devices that live as long as the VMM (across guest resets): the serial
/// ports with their host connections, the i8042 (the console's keys and
/// pointer go there), and the CMOS, whose contents real hardware keeps
/// across a reset.
pub(crate) struct LegacyDevices {
    serials: Vec<SerialPort>,
    i8042: Keyboard,
    cmos: Arc<Mutex<Cmos>>,
    pvpanic: bool,
    /// The debug console's port and device, with its host side.
    debugcon: Option<(u16, Arc<Mutex<DebugCon>>, Chardev)>,
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> VmmError {
    move |source| VmmError::Setup { what, source }
}

fn placement(source: rvirt_machine::AllocError) -> VmmError {
    VmmError::Placement(source)
}

/// What a boot's legacy devices give the main loop and the PCI chipset.
pub(crate) struct LegacyAttached {
    /// The power button lives here.
    pub(crate) pm: Arc<Mutex<AcpiPm>>,
    /// The reset register (port 0xcf9), left off the bus when a PCI
    /// chipset puts it behind CONFIG_ADDRESS (0xcf8-0xcff).
    pub(crate) reset_control: Option<SharedDevice>,
}

impl LegacyDevices {
    /// Opens the serial ports' host sides and claims every fixed port and
    /// IRQ from `alloc`.
    pub(crate) fn new(cfg: &VmConfig, alloc: &mut SystemAllocator) -> Result<Self, VmmError> {
        for (base, len) in FIXED_PORTS {
            alloc.reserve_pio(base, len).map_err(placement)?;
        }
        if cfg.pvpanic {
            alloc.reserve_pio(ports::PVPANIC, 1).map_err(placement)?;
        }
        if cfg.chipset == rvirt_vmm_config::Chipset::Microvm {
            alloc
                .reserve_pio(ports::RESET_CONTROL, 1)
                .map_err(placement)?;
        } else {
            // CONFIG_ADDRESS and CONFIG_DATA, with the reset register among
            // them.
            alloc.reserve_pio(0xcf8, 8).map_err(placement)?;
        }
        let mut serials = Vec::new();
        for s in &cfg.serials {
            // The COM port its index names (the parser keeps it below 4).
            let (port, irq) = COM_PORTS[s.index as usize % COM_PORTS.len()];
            alloc
                .reserve_pio(port, ports::UART_LEN)
                .map_err(placement)?;
            let irq = alloc.legacy_irq(irq).map_err(placement)?;
            let chardev =
                Chardev::open(&s.chardev, &s.backend).map_err(|source| VmmError::Chardev {
                    option: "-serial",
                    source,
                })?;
            let line = Arc::new(SwitchedLine::default());
            let out = chardev.writer().map_err(setup("serial output"))?;
            let device = Arc::new(Mutex::new(Serial::new(LineTrigger::new(line.clone()), out)));
            let input = device.clone();
            chardev
                .spawn_input(move |bytes| {
                    let mut dev = input.lock().unwrap_or_else(|p| p.into_inner());
                    dev.enqueue_input(bytes).unwrap_or(0)
                })
                .map_err(setup("serial input"))?;
            serials.push(SerialPort {
                device,
                line,
                chardev,
                port,
                irq,
            });
        }
        let debugcon = match &cfg.debugcon {
            Some(d) => {
                alloc.reserve_pio(d.port, 1).map_err(placement)?;
                let chardev =
                    Chardev::open("debugcon", &d.backend).map_err(|source| VmmError::Chardev {
                        option: "-debugcon",
                        source,
                    })?;
                let out = chardev.writer().map_err(setup("debug console output"))?;
                Some((d.port, Arc::new(Mutex::new(DebugCon::new(out))), chardev))
            }
            None => None,
        };
        let mut cmos = Cmos::new(rvirt_devices::rtc::host_clock());
        let ram = rvirt_machine::layout::RamLayout::new(cfg.mem_size);
        cmos.set_platform(ram.low, ram.high, cfg.smp.cpus);
        // QEMU's default order: disk, floppy, CD-ROM.
        cmos.set_boot_order(cfg.boot.order.as_deref().unwrap_or("cad"));
        let kbd = Arc::new(SwitchedLine::default());
        let aux = Arc::new(SwitchedLine::default());
        let control = Arc::new(SwitchedControl::default());
        let i8042 = Keyboard {
            device: Arc::new(Mutex::new(I8042::new(
                Some(kbd.clone()),
                Some(aux.clone()),
                control.clone(),
            ))),
            kbd,
            aux,
            control,
        };
        Ok(LegacyDevices {
            serials,
            i8042,
            cmos: Arc::new(Mutex::new(cmos)),
            pvpanic: cfg.pvpanic,
            debugcon,
        })
    }

    /// Puts the devices on a new machine's port bus with fresh interrupt
    /// lines, and describes them in `platform`. With `pci`, the reset
    /// register is handed back instead of placed.
    pub(crate) fn attach(
        &self,
        machine: &Machine,
        pio: &Bus,
        platform: &mut AcpiConfig,
        control: &Arc<BootEvents>,
        pci: bool,
    ) -> Result<LegacyAttached, VmmError> {
        let vm = machine.vm_fd();
        let irqfd = |gsi| IrqFd::new(vm, gsi).map_err(setup("an irqfd"));
        let insert = |dev: SharedDevice, base: u16, len: u16| {
            // The ports were reserved in the allocator: an overlap here is
            // a bug in this table, not something a user can cause.
            pio.insert(dev, u64::from(base), u64::from(len))
                .expect("legacy port assignments overlap");
        };
        for (i, s) in self.serials.iter().enumerate() {
            s.line.set(Arc::new(irqfd(s.irq)?));
            s.device.lock().unwrap_or_else(|p| p.into_inner()).reset();
            insert(s.device.clone(), s.port, ports::UART_LEN);
            platform
                .devices
                .push(Box::new(rvirt_devices::serial::acpi_device(
                    i as u8 + 1,
                    s.port,
                    ports::UART_LEN as u8,
                    s.irq,
                )));
        }
        platform
            .devices
            .push(Box::new(rvirt_devices::rtc::acpi_device(
                ports::CMOS,
                ports::CMOS_LEN as u8,
                irqs::RTC,
            )));
        platform
            .devices
            .push(Box::new(rvirt_devices::i8042::acpi_device(
                ports::I8042,
                ports::I8042 + 4,
                irqs::KEYBOARD,
            )));
        platform
            .devices
            .push(Box::new(rvirt_devices::i8042::acpi_mouse_device(
                irqs::MOUSE,
            )));

        let k = &self.i8042;
        k.kbd.set(Arc::new(irqfd(irqs::KEYBOARD)?));
        k.aux.set(Arc::new(irqfd(irqs::MOUSE)?));
        k.control.set(control.clone());
        k.device.lock().unwrap_or_else(|p| p.into_inner()).reset();
        insert(k.device.clone(), ports::I8042, ports::I8042_LEN);
        insert(self.cmos.clone(), ports::CMOS, ports::CMOS_LEN);
        // Level-triggered, active high (the MADT's override says so);
        // KVM_IRQ_LINE, not a resample irqfd, whose set-up waits for an
        // SRCU grace period at every boot (see crate::interrupts).
        let sci = Arc::new(KvmLevelLine::new(vm.clone(), irqs::SCI));
        let pm = Arc::new(Mutex::new(AcpiPm::new(sci, control.clone())));
        insert(
            pm.clone(),
            ports::ACPI_PM,
            rvirt_devices::acpi_pm::LEN as u16,
        );
        let reset: SharedDevice = Arc::new(Mutex::new(ResetControl::new(control.clone())));
        let reset_control = if pci {
            Some(reset)
        } else {
            insert(reset, ports::RESET_CONTROL, 1);
            None
        };
        insert(Arc::new(Mutex::new(PostPort::default())), ports::POST, 1);
        if self.pvpanic {
            insert(
                Arc::new(Mutex::new(PvPanic::new(control.clone()))),
                ports::PVPANIC,
                1,
            );
        }
        if let Some((port, dev, _)) = &self.debugcon {
            insert(dev.clone(), *port, 1);
        }
        Ok(LegacyAttached { pm, reset_control })
    }

    /// The i8042, where the console's keys and pointer go when no virtio
    /// device takes them.
    pub(crate) fn i8042(&self) -> Arc<Mutex<I8042>> {
        self.i8042.device.clone()
    }

    /// `query-chardev` entries for the serial ports.
    pub(crate) fn chardev_infos(&self) -> Vec<rvirt_qmp::ChardevInfo> {
        self.serials
            .iter()
            .map(|s| rvirt_qmp::ChardevInfo {
                label: s.chardev.label().to_string(),
                filename: s.chardev.filename(),
                frontend_open: true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_constants_agree() {
        // The DSDT announces the S5 sleep type the PM device acts on, and
        // the FADT the reset value the reset register acts on.
        assert_eq!(
            u16::from(rvirt_machine::layout::S5_SLP_TYP),
            rvirt_devices::acpi_pm::S5_SLP_TYP
        );
        assert_eq!(
            rvirt_machine::layout::RESET_VALUE,
            rvirt_devices::reset_control::RESET_VALUE
        );
        assert_eq!(
            rvirt_devices::acpi_pm::PM_TMR,
            u64::from(ports::ACPI_PM_TMR - ports::ACPI_PM)
        );
        assert_eq!(
            rvirt_devices::acpi_pm::PM1_CNT,
            u64::from(ports::ACPI_PM1A_CNT - ports::ACPI_PM)
        );
    }
}
