//! The device manager: builds every device once from the command line
//! (factory: [`legacy`], [`virtio`]), places them through the machine's
//! allocator (ports, IRQs, MMIO slots, GSIs; decided once, so every boot of
//! the VM has the same layout), and wires them to each new machine: the
//! buses, interrupt lines (`crate::interrupts`), ioeventfds
//! (`crate::ioevents`), the ACPI description each device contributes, and
//! the event loop that serves them (`crate::event_loop`).

mod acpi_hotplug;
mod ata;
mod display;
mod firmware;
mod hotplug;
mod legacy;
mod lpt;
mod media;
mod nic;
mod pci;
mod scsi;
mod usb;
pub(crate) mod virtio;
mod watchdog;

pub(crate) use usb::UsbHid;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rvirt_bus::Bus;
use rvirt_devices::{fw_cfg, AcpiPm};
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::layout::RamLayout;
use rvirt_machine::{FirmwareTables, Machine, SystemAllocator};
use rvirt_qmp::{ChardevInfo, EventBus};
use rvirt_virtio::mmio::{self, MMIO_SIZE};
use rvirt_virtio::{MmioTransport, VirtioTransport};
use rvirt_vmm_config::{Chipset, DeviceAddr, VirtioConfig, VmConfig};
use vmm_sys_util::eventfd::EventFd;

use crate::balloon::BalloonControl;
use crate::chardev::Chardev;
use crate::disk::DiskModel;
use crate::event_loop::{EventLoop, Subscriber, DYNAMIC, DYNAMIC_OUT};
use crate::events::{BootEvents, EventSender};
use crate::interrupts::IrqFd;
use crate::ioevents::{IoSpace, Notifiers};
use crate::VmmError;
pub use firmware::FirmwareItemsError;
use legacy::LegacyDevices;
pub(crate) use pci::board;
pub(crate) use virtio::NicControl;
use virtio::SharedVirtio;
pub use virtio::VirtioError;

/// Where a virtio device was placed.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A virtio-mmio slot and its (edge) IOAPIC pin.
    Mmio { base: u64, gsi: u32 },
    /// A PCI function ([`pci::PciPlan`] has the rest).
    Pci,
}

/// A virtio device and where it was placed.
struct VirtioSlot {
    device: SharedVirtio,
    /// Set when the device left the machine: the event loop drops its
    /// subscriber.
    retired: Arc<AtomicBool>,
    place: Place,
    /// The option to blame when wiring it fails.
    option: &'static str,
    /// `bootindex=`s, and the firmware's name for each device under it.
    boot: Vec<(u32, String)>,
}

/// Every device of the VM, which live as long as the VMM.
pub(crate) struct DeviceManager {
    legacy: LegacyDevices,
    parallels: lpt::ParallelPorts,
    virtio: Vec<VirtioSlot>,
    /// The PCI side (pc and q35).
    pci: Option<pci::PciPlan>,
    /// The AHCI controllers and their drives.
    ata: Vec<ata::AtaController>,
    /// pc's PIIX3 IDE.
    ide: Option<Arc<Mutex<rvirt_ata::ide::Ide>>>,
    ata_drives: Vec<ata::AtaDrive>,
    /// The virtio-scsi controllers' LUNs.
    scsi_luns: Vec<scsi::ScsiLun>,
    /// The virtio consoles' host ends, open as long as the VMM.
    chardevs: Vec<Chardev>,
    balloon: Option<BalloonControl>,
    nics: Vec<NicControl>,
    /// The NICs that are not virtio (`-device e1000`), in command-line
    /// order, as [`VmConfig::nics`].
    pci_nics: Vec<nic::SharedE1000>,
    disks: Vec<DiskModel>,
    /// passt for each `-netdev user`, stopped when the VMM ends.
    _passt: Vec<crate::passt::Passt>,
    /// The virtio-input devices, in command-line order.
    inputs: Vec<Arc<Mutex<rvirt_virtio::input::Input>>>,
    events: EventSender,
    /// The configuration, kept current with hot-plug (the devices of the
    /// next boot).
    config: VmConfig,
    /// What placed the devices, for those hot-plugged later (their
    /// vectors' GSIs).
    alloc: Option<SystemAllocator>,
    bus: EventBus,
    /// Back-ends `netdev_add` made that no device uses yet, with the
    /// descriptor a tap was passed as.
    netdevs: Vec<hotplug::AddedNetdev>,
    /// Devices `device_del` asked the guest to let go of, and when.
    unplugging: Vec<(String, std::time::Instant)>,
}

/// A machine's buses with the devices on them.
pub(crate) struct Attached {
    pub(crate) pio: Arc<Bus>,
    pub(crate) mmio: Arc<Bus>,
    pub(crate) platform: AcpiConfig,
    /// The power button lives here.
    pub(crate) pm: Arc<Mutex<AcpiPm>>,
    /// The thread serving this boot's devices.
    pub(crate) event_loop: EventLoop,
    /// What this boot's devices and vCPUs post to the main loop.
    pub(crate) events: Arc<BootEvents>,
    /// What must live as long as the boot.
    pub(crate) wiring: Wiring,
}

/// The wiring of one boot that must live as long as it: where each
/// transport's kicks are caught (a transport that moves re-registers
/// through its [`Notifiers`]).
pub(crate) struct Wiring {
    _notifiers: Vec<Notifiers>,
    pub(crate) pci: Option<pci::PciWiring>,
    /// pc's ACPI PCI hot-plug registers.
    pub(crate) _pcihp: Option<Arc<Mutex<rvirt_pci::pcihp::PciHotplug>>>,
}

impl Wiring {
    /// `query-pci`: the PCI buses as the guest programmed them.
    pub(crate) fn query_pci(&self) -> Vec<rvirt_qmp::PciInfo> {
        self.pci
            .as_ref()
            .map(|p| pci::query(&p.segment))
            .unwrap_or_default()
    }
}

impl DeviceManager {
    /// Opens every device's host side and places every device.
    pub(crate) fn new(
        cfg: &VmConfig,
        events: EventSender,
        bus: &EventBus,
    ) -> Result<Self, VmmError> {
        let board = pci::board(cfg.chipset);
        let mut alloc = SystemAllocator::new(&RamLayout::for_board(board, cfg.mem_size));
        let has_pci = cfg.chipset != Chipset::Microvm;
        if has_pci {
            pci::PciPlan::reserve(cfg, &mut alloc)?;
            if acpi_hotplug::wanted(cfg) {
                acpi_hotplug::reserve(&mut alloc)?;
            }
        }
        let legacy = LegacyDevices::new(cfg, &mut alloc)?;
        let parallels = lpt::ParallelPorts::new(cfg, &mut alloc)?;
        let mut dm = DeviceManager {
            legacy,
            parallels,
            virtio: Vec::new(),
            pci: None,
            ata: Vec::new(),
            ide: None,
            ata_drives: Vec::new(),
            scsi_luns: Vec::new(),
            chardevs: Vec::new(),
            balloon: None,
            nics: Vec::new(),
            pci_nics: Vec::new(),
            disks: Vec::new(),
            _passt: Vec::new(),
            inputs: Vec::new(),
            events,
            config: cfg.clone(),
            alloc: None,
            bus: bus.clone(),
            netdevs: Vec::new(),
            unplugging: Vec::new(),
        };
        if cfg.bios.is_some() {
            alloc
                .reserve_pio(fw_cfg::PORT_BASE, fw_cfg::PORT_LEN)
                .map_err(VmmError::Placement)?;
        }
        let virtio_err = |(option, source)| VmmError::Virtio { option, source };
        // virtio-mmio placement first, so a VM with too many devices opens
        // none.
        let mut places = Vec::new();
        let mut mmio = 0;
        for addr in &cfg.virtio_addrs {
            if let DeviceAddr::Pci { .. } = addr {
                places.push(Place::Pci);
                continue;
            }
            let placed = alloc
                .allocate_gsi()
                .and_then(|gsi| Ok((alloc.allocate_platform_mmio(MMIO_SIZE, MMIO_SIZE)?, gsi)));
            match placed {
                Ok((range, gsi)) => places.push(Place::Mmio {
                    base: range.base,
                    gsi,
                }),
                Err(_) => return Err(virtio_err(("-device", VirtioError::TooMany(mmio)))),
            }
            mmio += 1;
        }
        let mut requests = Vec::new();
        for (i, (dev, place)) in cfg.virtio.iter().zip(places).enumerate() {
            let built = virtio::build(i, dev, cfg, bus).map_err(virtio_err)?;
            dm.chardevs.extend(built.chardev);
            dm.nics.extend(built.nic);
            dm.disks.extend(built.disks);
            dm._passt.extend(built.passt);
            dm.inputs.extend(built.input);
            dm.scsi_luns.extend(built.scsi_luns);
            if built.balloon.is_some() {
                dm.balloon = built.balloon;
            }
            let boot: Vec<(u32, String)> = match dev {
                VirtioConfig::Blk(d) => d
                    .bootindex
                    .map(|i| (i, "disk@0,0".into()))
                    .into_iter()
                    .collect(),
                VirtioConfig::Net(n) => n
                    .bootindex
                    .map(|i| (i, "ethernet@0".into()))
                    .into_iter()
                    .collect(),
                // QEMU's path of a LUN: channel, then the target and LUN
                // (`channel@0/disk@1,0`), as SeaBIOS looks it up.
                VirtioConfig::Scsi(s) => s
                    .luns
                    .iter()
                    .filter_map(|l| {
                        Some((
                            l.bootindex?,
                            format!("channel@0/disk@{:x},{:x}", l.target, l.lun),
                        ))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if let DeviceAddr::Pci { addr, .. } = cfg.virtio_addrs[i] {
                let vectors = rvirt_virtio::transport::pci::vectors_for(
                    &*built.device.lock().unwrap_or_else(|p| p.into_inner()),
                );
                requests.push(pci::PciRequest {
                    virtio: i,
                    addr,
                    id: dev.id().map(str::to_string),
                    vectors,
                });
            }
            dm.virtio.push(VirtioSlot {
                device: built.device,
                retired: Arc::new(AtomicBool::new(false)),
                place,
                option: built.option,
                boot,
            });
        }
        let ata = ata::build(cfg, cfg.virtio.len(), bus)?;
        dm.ata = ata.controllers;
        dm.ide = ata.ide;
        dm.ata_drives = ata.drives;
        dm.disks.extend(ata.models);
        for n in &cfg.nics {
            let built = nic::build(n).map_err(|source| VmmError::Virtio {
                option: "-netdev",
                source,
            })?;
            dm.nics.push(NicControl::new(
                &n.net.netdev,
                n.net.id.as_deref(),
                virtio::Nic::E1000(built.device.clone()),
            ));
            dm.pci_nics.push(built.device);
            dm._passt.extend(built.passt);
        }
        if has_pci {
            dm.pci = Some(pci::PciPlan::new(
                cfg,
                &mut alloc,
                requests,
                &dm.ata,
                dm.ide.clone(),
            )?);
        }
        dm.alloc = Some(alloc);
        Ok(dm)
    }

    /// Puts every device on a new machine, wired to its VM fd, and starts
    /// the event loop that serves them (parked if `paused`).
    pub(crate) fn attach(&self, machine: &Machine, paused: bool) -> Result<Attached, VmmError> {
        let pio = Arc::new(Bus::new("pio"));
        let mmio = Arc::new(Bus::new("mmio"));
        let mut platform = AcpiConfig::default();
        let control = Arc::new(BootEvents::new(self.events.clone()));
        let legacy =
            self.legacy
                .attach(machine, &pio, &mut platform, &control, self.pci.is_some())?;
        self.parallels.attach(machine, &pio, &mut platform)?;

        let vm = machine.vm_fd();
        let mut subscribers: Vec<Box<dyn Subscriber>> = Vec::new();
        let mut notifiers = Vec::new();
        for (i, s) in self.virtio.iter().enumerate() {
            let Place::Mmio { base, gsi } = s.place else {
                continue;
            };
            let err = |source| VmmError::Virtio {
                option: s.option,
                source,
            };
            let kvm = |what| move |source| err(VirtioError::Kvm { what, source });
            // A reboot leaves the device as the old guest drove it.
            s.device.lock().unwrap_or_else(|p| p.into_inner()).reset();
            let irq = IrqFd::new(vm, gsi).map_err(kvm("an irqfd"))?;
            let transport =
                MmioTransport::new(s.device.clone(), machine.memory().clone(), Arc::new(irq));
            let notify = Notifiers::register(vm, IoSpace::Mmio, base, &transport.notify_regions())
                .map_err(kvm("an ioeventfd"))?;
            let kicks = notify.kicks().map_err(|source| {
                err(VirtioError::Setup {
                    what: "an ioeventfd",
                    source,
                })
            })?;
            notifiers.push(notify);
            subscribers.push(Box::new(VirtioSubscriber {
                device: s.device.clone(),
                kicks,
                retired: s.retired.clone(),
            }));
            // The slots come from the allocator: an overlap is a bug in the
            // layout.
            mmio.insert(Arc::new(Mutex::new(transport)), base, MMIO_SIZE)
                .expect("virtio-mmio slots overlap");
            platform.devices.push(Box::new(mmio::acpi_device(
                i as u8,
                base as u32,
                MMIO_SIZE as u32,
                gsi,
            )));
        }
        let pci = match &self.pci {
            Some(plan) => {
                let watchdog = match plan.watchdog() {
                    Some(w) => {
                        let built = w.attach(control.clone())?;
                        subscribers.push(built.subscriber);
                        Some(built.function)
                    }
                    None => None,
                };
                let pm: rvirt_bus::SharedDevice = legacy.pm.clone();
                Some(plan.attach(
                    machine,
                    &pio,
                    &mmio,
                    pm,
                    legacy.reset_control,
                    &self.virtio,
                    &self.pci_nics,
                    self.events.clone(),
                    watchdog,
                    &mut subscribers,
                    &mut platform,
                )?)
            }
            None => None,
        };
        // After the root bridge's node: the slot devices go in its scope.
        let pcihp = (pci.is_some() && acpi_hotplug::wanted(&self.config))
            .then(|| acpi_hotplug::attach(&self.config, &pio, &legacy.pm, &mut platform));
        let event_loop =
            EventLoop::start("devices", subscribers, paused).map_err(|source| VmmError::Setup {
                what: "the device event loop",
                source,
            })?;
        Ok(Attached {
            pio,
            mmio,
            platform,
            pm: legacy.pm,
            event_loop,
            events: control,
            wiring: Wiring {
                _notifiers: notifiers,
                pci,
                _pcihp: pcihp,
            },
        })
    }

    /// Puts fw_cfg on a booted machine's port bus, serving `tables` and
    /// what the configuration says about booting.
    pub(crate) fn attach_firmware(
        &self,
        machine: &Machine,
        pio: &Bus,
        tables: &FirmwareTables,
    ) -> Result<(), VmmError> {
        let mut boot: Vec<firmware::BootDevice> = self
            .virtio
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.boot.iter().filter_map(move |(index, name)| {
                    let path = match (s.place, self.config.virtio_addrs[i]) {
                        // SeaBIOS names a virtio-mmio device by its base address.
                        (Place::Mmio { base, .. }, _) => {
                            format!("/virtio-mmio@{base:016x}/{name}")
                        }
                        (Place::Pci, DeviceAddr::Pci { addr, .. }) => {
                            firmware::pci_boot_path(&self.config, addr, name)
                        }
                        (Place::Pci, DeviceAddr::Mmio) => return None,
                    };
                    Some(firmware::BootDevice {
                        index: *index,
                        path,
                    })
                })
            })
            .chain(self.config.nics.iter().filter_map(|n| {
                Some(firmware::BootDevice {
                    index: n.net.bootindex?,
                    path: firmware::pci_boot_path(&self.config, n.addr, "ethernet@0"),
                })
            }))
            .collect();
        for d in &self.ata_drives {
            let Some(index) = d.bootindex else { continue };
            if d.ide {
                // QEMU's path: the IDE function by its class, the channel
                // as a drive and the unit as a disk under it.
                let leaf = format!("drive@{:x}/disk@{:x}", d.port / 2, d.port % 2);
                let addr = rvirt_vmm_config::PciAddr {
                    bus: rvirt_vmm_config::PciBus::Root,
                    slot: 1,
                    function: 1,
                    multifunction: false,
                };
                let path = firmware::pci_path(&self.config, addr, "ide", &leaf);
                boot.push(firmware::BootDevice { index, path });
                continue;
            }
            let Some(c) = self.ata.get(d.controller) else {
                continue;
            };
            // QEMU names an AHCI controller by its IDs (it has no firmware
            // name), a port as a drive and the unit under it as a disk.
            let leaf = format!("drive@{:x}/disk@0", d.port);
            let path = firmware::pci_path(&self.config, c.cfg.addr, "pci8086,2922", &leaf);
            boot.push(firmware::BootDevice { index, path });
        }
        let max_cpus = machine.apic_ids().iter().max().map_or(1, |m| m + 1) as u16;
        let items = firmware::items(&self.config, tables, max_cpus, &mut boot)
            .map_err(|source| VmmError::Firmware { source })?;
        let mut device = items.build(machine.memory().clone());
        if tables.acpi.is_some() {
            firmware::refresh_acpi(&mut device, tables.platform.clone());
        }
        // The range was reserved in the allocator.
        pio.insert(
            Arc::new(Mutex::new(device)),
            u64::from(fw_cfg::PORT_BASE),
            u64::from(fw_cfg::PORT_LEN),
        )
        .expect("fw_cfg ports overlap");
        Ok(())
    }

    /// `query-chardev` entries for the serial and parallel ports and
    /// virtio consoles.
    pub(crate) fn chardev_infos(&self) -> Vec<ChardevInfo> {
        let mut infos = self.legacy.chardev_infos();
        infos.extend(self.parallels.chardev_infos());
        infos.extend(self.chardevs.iter().map(|c| ChardevInfo {
            label: c.label().to_string(),
            filename: c.filename(),
            frontend_open: true,
        }));
        infos
    }

    /// A removable-media command on the CD-ROM `target` names (its device
    /// id, or its `-drive` id).
    pub(crate) fn medium(
        &self,
        target: &rvirt_qmp::MediumTarget,
        op: rvirt_qmp::MediumOp,
        bus: &EventBus,
        nodes: &mut crate::block_nodes::BlockNodes,
    ) -> Result<(), rvirt_qmp::QmpError> {
        use rvirt_qmp::{MediumOp, QmpError};
        // An ATA drive (pc's IDE drives are on the PIIX3 function, the
        // rest on an AHCI) or a virtio-scsi LUN.
        enum Found<'a> {
            Ata(&'a ata::AtaDrive),
            Scsi(&'a scsi::ScsiLun),
        }
        let found = self
            .ata_drives
            .iter()
            .find(|d| d.media.is(target))
            .map(Found::Ata)
            .or_else(|| {
                self.scsi_luns
                    .iter()
                    .find(|l| l.media.is(target))
                    .map(Found::Scsi)
            });
        let Some(found) = found else {
            return Err(QmpError::device_not_found(target.name()));
        };
        let media = match found {
            Found::Ata(d) => &d.media,
            Found::Scsi(l) => &l.media,
        };
        // The name its medium's node is held under (BlockNodes::new).
        let holder = media.name();
        match op {
            MediumOp::Insert { node_name } => {
                if !nodes.contains(&node_name) {
                    return Err(QmpError::generic(format!("Node '{node_name}' not found")));
                }
                let node = nodes.format_node(&node_name).cloned().ok_or_else(|| {
                    QmpError::generic(format!(
                        "node '{node_name}' is a protocol node: a CD-ROM takes a format node"
                    ))
                })?;
                if nodes.user(&node_name).is_some() {
                    return Err(QmpError::generic(format!(
                        "Node '{node_name}' is already in use"
                    )));
                }
                let filename = node.path().display().to_string();
                match found {
                    Found::Ata(d) => {
                        let disk = media::open_node(&node)?;
                        match self.ide.as_ref().filter(|_| d.ide) {
                            Some(ide) => {
                                media::insert(ata::AtaSlot::lock(ide, d), media, disk, filename)?
                            }
                            None => {
                                let ahci = &self.ata[d.controller].ahci;
                                media::insert(ata::AtaSlot::lock(ahci, d), media, disk, filename)?
                            }
                        }
                    }
                    Found::Scsi(l) => {
                        let disk = media::open_node(&node)?;
                        media::insert(scsi::ScsiSlot::lock(l), media, disk, filename)?
                    }
                }
                nodes.attach(&node_name, crate::block_nodes::User::Device(holder))?;
                Ok(())
            }
            op => {
                let removes = matches!(
                    op,
                    MediumOp::Remove | MediumOp::Eject { .. } | MediumOp::Change { .. }
                );
                match found {
                    Found::Ata(d) => match self.ide.as_ref().filter(|_| d.ide) {
                        Some(ide) => media::run(|| ata::AtaSlot::lock(ide, d), media, op, bus)?,
                        None => {
                            let ahci = &self.ata[d.controller].ahci;
                            media::run(|| ata::AtaSlot::lock(ahci, d), media, op, bus)?
                        }
                    },
                    Found::Scsi(l) => media::run(|| scsi::ScsiSlot::lock(l), media, op, bus)?,
                }
                // The node that was the medium is free for blockdev-del.
                if let (true, Some(n)) = (removes, nodes.held_by(&holder)) {
                    nodes.detach(&n);
                }
                Ok(())
            }
        }
    }

    /// The NIC `set_link` names, if any.
    pub(crate) fn nic(&self, name: &str) -> Option<&NicControl> {
        self.nics.iter().find(|n| n.is_named(name))
    }

    /// What the VNC console shows: the display device's screen, if any.
    pub(crate) fn screen(&self) -> Option<Arc<dyn rvirt_vnc::Framebuffer>> {
        let s = self.pci.as_ref()?.screen()?;
        Some(s)
    }

    /// The balloon, if the VM has one.
    /// The disks, as the monitor reports them.
    pub(crate) fn disks(&self) -> Vec<DiskModel> {
        self.disks.clone()
    }

    /// Where the console's keys and pointer go (the i8042 and the
    /// virtio-input devices, routed as QEMU).
    pub(crate) fn input_sink(&self) -> Arc<dyn rvirt_vnc::InputSink> {
        let usb = self.pci.as_ref().map_or(&[][..], |p| p.usb_hids());
        Arc::new(crate::input::InputRouter::new(
            self.legacy.i8042(),
            &self.inputs,
            usb,
        ))
    }

    pub(crate) fn balloon(&self) -> Option<&BalloonControl> {
        self.balloon.as_ref()
    }

    /// The `virtio_mmio.device=` entries for the kernel command line, so
    /// that a kernel without ACPI (or with `acpi=off`) finds the devices.
    pub(crate) fn virtio_cmdline(&self) -> String {
        self.virtio
            .iter()
            .filter_map(|s| match s.place {
                Place::Mmio { base, gsi } => Some(format!("virtio_mmio.device=4K@{base:#x}:{gsi}")),
                Place::Pci => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A virtio device as the event loop serves it: its queues' ioeventfds
/// (tokens: the queue index) and the host descriptor it asks for.
struct VirtioSubscriber {
    device: SharedVirtio,
    kicks: Vec<(u16, EventFd)>,
    retired: Arc<AtomicBool>,
}

impl Subscriber for VirtioSubscriber {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        self.kicks
            .iter()
            .enumerate()
            .map(|(i, (_, evt))| (evt.as_raw_fd(), i as u32))
            .collect()
    }

    fn dynamic_fd(&self) -> Option<RawFd> {
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .host_fd()
    }

    fn dynamic_out_fd(&self) -> Option<RawFd> {
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .host_fd_out()
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    fn handle(&mut self, token: u32) {
        let lock = || self.device.lock().unwrap_or_else(|p| p.into_inner());
        if token == DYNAMIC {
            lock().process_host_fd();
            return;
        }
        if token == DYNAMIC_OUT {
            lock().process_host_fd_out();
            return;
        }
        let Some((queue, evt)) = self.kicks.get(token as usize) else {
            return;
        };
        // Nonblocking: a spurious wakeup reads EAGAIN and changes nothing.
        if evt.read().is_ok() {
            lock().process_queue(*queue);
        }
    }
}
