//! The machine's devices and how they are wired to a booted machine: port
//! assignments, irqfds and the ACPI description.

use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;
use rvirt_bus::{Bus, InterruptLine, SharedDevice};
use rvirt_devices::{AcpiPm, Cmos, EventFdTrigger, PortSink, PvPanic, ResetControl, Serial, I8042};
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::layout::{irqs, ports};
use rvirt_machine::Machine;
use rvirt_vmm_config::VmConfig;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::chardev::Chardev;
use crate::events::{BootEvents, EventSender};
use crate::virtio::{DeviceLoop, VirtioDevices};
use crate::VmmError;

/// COM1..COM4: (port, IRQ).
const COM_PORTS: [(u16, u32); 4] = [
    (ports::COM1, irqs::COM1),
    (ports::COM2, irqs::COM2),
    (ports::COM3, 4),
    (ports::COM4, 3),
];

/// A machine's buses with the devices on them.
pub(crate) struct Attached {
    pub(crate) pio: Bus,
    pub(crate) mmio: Bus,
    pub(crate) platform: AcpiConfig,
    /// The power button lives here.
    pub(crate) pm: Arc<Mutex<AcpiPm>>,
    /// The thread serving the virtio queues of this boot.
    pub(crate) virtio: DeviceLoop,
    /// What this boot's devices and vCPUs post to the main loop.
    pub(crate) events: Arc<BootEvents>,
}

struct SerialPort {
    device: Arc<Mutex<Serial>>,
    irq_evt: EventFdTrigger,
    chardev: Chardev,
    port: u16,
    irq: u32,
}

/// Devices that live as long as the VMM (across guest resets): the serial
/// ports with their host connections, and the CMOS, whose contents real
/// hardware keeps across a reset.
pub(crate) struct Devices {
    serials: Vec<SerialPort>,
    cmos: Arc<Mutex<Cmos>>,
    pvpanic: bool,
    virtio: VirtioDevices,
    events: EventSender,
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> VmmError {
    move |source| VmmError::Setup { what, source }
}

fn eventfd(what: &'static str) -> Result<EventFd, VmmError> {
    EventFd::new(EFD_NONBLOCK).map_err(setup(what))
}

/// The SCI: a level-triggered line driven with KVM_IRQ_LINE.
struct IrqLine {
    vm: Arc<VmFd>,
    gsi: u32,
}

impl InterruptLine for IrqLine {
    fn set_level(&self, high: bool) {
        if let Err(e) = self.vm.set_irq_line(self.gsi, high) {
            tracing::warn!("failed to set GSI {}: {e}", self.gsi);
        }
    }
}

impl Devices {
    pub(crate) fn new(
        cfg: &VmConfig,
        events: EventSender,
        bus: &rvirt_qmp::EventBus,
    ) -> Result<Self, VmmError> {
        let mut serials = Vec::new();
        for (s, &(port, irq)) in cfg.serials.iter().zip(COM_PORTS.iter()) {
            let chardev =
                Chardev::open(&s.chardev, &s.backend).map_err(|source| VmmError::Chardev {
                    option: "-serial",
                    source,
                })?;
            let irq_evt = EventFdTrigger::new(eventfd("a serial interrupt")?);
            let out = chardev.writer().map_err(setup("serial output"))?;
            let device = Arc::new(Mutex::new(Serial::new(irq_evt.clone(), out)));
            let input = device.clone();
            chardev
                .spawn_input(move |bytes| {
                    let mut dev = input.lock().unwrap_or_else(|p| p.into_inner());
                    dev.enqueue_input(bytes).unwrap_or(0)
                })
                .map_err(setup("serial input"))?;
            serials.push(SerialPort {
                device,
                irq_evt,
                chardev,
                port,
                irq,
            });
        }
        let virtio = VirtioDevices::new(cfg, bus)
            .map_err(|(option, source)| VmmError::Virtio { option, source })?;
        Ok(Devices {
            virtio,
            serials,
            cmos: Arc::new(Mutex::new(Cmos::new(rvirt_devices::rtc::host_clock()))),
            pvpanic: cfg.pvpanic,
            events,
        })
    }

    /// Puts the devices on a new machine's buses and returns them with the
    /// platform description for the ACPI tables.
    /// With `paused`, the virtio device loop starts parked.
    pub(crate) fn attach(&self, machine: &Machine, paused: bool) -> Result<Attached, VmmError> {
        let vm = machine.vm_fd();
        let kvm = |source: kvm_ioctls::Error| VmmError::Setup {
            what: "an irqfd",
            source: std::io::Error::from_raw_os_error(source.errno()),
        };
        let mut pio = Bus::new("pio");
        let mut mmio = Bus::new("mmio");
        let mut insert = |dev: SharedDevice, base: u16, len: u16| {
            // The port map is fixed and known not to overlap; a failure
            // here is a bug in this table, not something a user can cause.
            pio.insert(dev, u64::from(base), u64::from(len))
                .expect("legacy port assignments overlap");
        };

        let mut platform = AcpiConfig::default();
        for s in &self.serials {
            vm.register_irqfd(s.irq_evt.eventfd(), s.irq).map_err(kvm)?;
            s.device.lock().unwrap_or_else(|p| p.into_inner()).reset();
            insert(s.device.clone(), s.port, ports::UART_LEN);
            platform.serial_ports.push((s.port, s.irq));
        }

        let control = Arc::new(BootEvents::new(self.events.clone()));
        let kbd = EventFdTrigger::new(eventfd("the keyboard interrupt")?);
        let aux = EventFdTrigger::new(eventfd("the mouse interrupt")?);
        vm.register_irqfd(kbd.eventfd(), irqs::KEYBOARD)
            .map_err(kvm)?;
        vm.register_irqfd(aux.eventfd(), irqs::MOUSE).map_err(kvm)?;
        insert(
            Arc::new(Mutex::new(I8042::new(
                Some(kbd),
                Some(aux),
                control.clone(),
            ))),
            ports::I8042,
            ports::I8042_LEN,
        );
        insert(self.cmos.clone(), ports::CMOS, ports::CMOS_LEN);
        let sci = Arc::new(IrqLine {
            vm: vm.clone(),
            gsi: irqs::SCI,
        });
        let pm = Arc::new(Mutex::new(AcpiPm::new(sci, control.clone())));
        insert(
            pm.clone(),
            ports::ACPI_PM,
            rvirt_devices::acpi_pm::LEN as u16,
        );
        insert(
            Arc::new(Mutex::new(ResetControl::new(control.clone()))),
            ports::RESET_CONTROL,
            1,
        );
        insert(Arc::new(Mutex::new(PortSink::default())), ports::POST, 1);
        if self.pvpanic {
            insert(
                Arc::new(Mutex::new(PvPanic::new(control.clone()))),
                ports::PVPANIC,
                1,
            );
        }
        let virtio = self
            .virtio
            .attach(vm, machine.memory(), &mut mmio, &mut platform, paused)
            .map_err(|source| VmmError::Virtio {
                option: "-device",
                source,
            })?;
        Ok(Attached {
            pio,
            mmio,
            platform,
            pm,
            virtio,
            events: control,
        })
    }

    /// `query-chardev` entries for the serial ports and virtio consoles.
    pub(crate) fn chardev_infos(&self) -> Vec<rvirt_qmp::ChardevInfo> {
        let mut infos: Vec<_> = self
            .serials
            .iter()
            .map(|s| rvirt_qmp::ChardevInfo {
                label: s.chardev.label().to_string(),
                filename: s.chardev.filename(),
                frontend_open: true,
            })
            .collect();
        infos.extend(self.virtio.chardev_infos());
        infos
    }

    /// The NICs, for QMP `set_link`.
    pub(crate) fn nics(&self) -> Vec<crate::virtio::NicControl> {
        self.virtio.nics()
    }

    /// The balloon, if the VM has one.
    pub(crate) fn balloon(&self) -> Option<crate::balloon::BalloonControl> {
        self.virtio.balloon()
    }

    /// `query-block` entries for the disks.
    pub(crate) fn block_infos(&self) -> Vec<rvirt_qmp::BlockInfo> {
        self.virtio.block_infos()
    }

    /// The `virtio_mmio.device=` entries for the kernel command line.
    pub(crate) fn virtio_cmdline(&self) -> String {
        self.virtio.cmdline()
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
            rvirt_devices::sink::RESET_VALUE
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
