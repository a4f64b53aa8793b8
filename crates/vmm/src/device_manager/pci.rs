//! PCI on `pc` and `q35`: the chipset's functions, the root ports, the
//! virtio-pci functions and the emulated NICs (`-device e1000`) of the
//! command line.
//!
//! Placed once ([`PciPlan::new`]): each function where the command line put
//! it, its MSI-X vectors' GSIs, and, since rvirt boots kernels directly
//! and so plays firmware, what firmware would program: every BAR inside
//! the windows the DSDT's `_CRS` describes (32-bit BARs in the allocator's
//! 32-bit PCI window, 64-bit ones above RAM), each root port's bus numbers
//! (in slot order, as SeaBIOS numbers them) and memory windows around the
//! BARs behind it, decode and bus mastering on.
//!
//! Wired to each boot's machine ([`PciPlan::attach`]): a fresh segment of
//! fresh functions behind CONFIG_ADDRESS/CONFIG_DATA (and ECAM on q35,
//! placed by PCIEXBAR), MSI-X through KVM GSI routes with one irqfd per
//! vector, INTx on the PIRQ wires (resampled level lines on GSIs 16-23,
//! and the ISA IRQ a PIRQ routing register picks), and the ioeventfds in
//! each virtio BAR, which follow the BAR wherever the guest moves it
//! ([`PciNotifiers`], the segment's [`BarObserver`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use kvm_ioctls::VmFd;
use rvirt_bus::{Bus, SharedDevice};
use rvirt_machine::acpi::AcpiConfig;
use rvirt_machine::layout;
use rvirt_machine::{BiosArea, Machine, SegmentMode, SystemAllocator};
use rvirt_pci::access::{ConfigIo, Ecam, CONFIG_IO_BASE, CONFIG_IO_LEN};
use rvirt_pci::acpi::{LiveRootBridge, RootBridge, Route, PC_HOLE64_SIZE, Q35_HOLE64_SIZE};
use rvirt_pci::bridge::RootPort;
use rvirt_pci::chipset::pam::{PamHook, PamMode, PamRange};
use rvirt_pci::chipset::{i440fx, ich9, piix, q35, Preset, ECAM_BASE, ECAM_SIZE, PM_BASE};
use rvirt_pci::config::{command, reg};
use rvirt_pci::function::{lock, Placement};
use rvirt_pci::intx::{swizzle, PirqRouter, PIRQ_GSI_BASE};
use rvirt_pci::pci_bridge::{BridgeModel, PciBridge};
use rvirt_pci::{
    BarMapping, BarObserver, FunctionId, FunctionInfo, PciSegment, SegmentBuilder, SharedFunction,
};
use rvirt_platform::InterruptLine;
use rvirt_virtio::transport::pci::{
    PciPlacement, PciTransport, MSIX_BAR, MSIX_BAR_SIZE, VIRTIO_BAR, VIRTIO_BAR_SIZE,
};
use rvirt_virtio::VirtioTransport;
use rvirt_vmm_config::{Chipset, NicModel, PciAddr, PciBus, PortModel, RootPortConfig, VmConfig};

use rvirt_ata::ahci::{Ahci, Wiring as AhciWiring, ABAR, ABAR_SIZE};
use rvirt_ata::ide::{
    Ide, Wiring as IdeWiring, BM_BAR as IDE_BM_BAR, BM_SIZE as IDE_BM_SIZE, LEGACY as IDE_LEGACY,
};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::ata::{AtaController, AtaSubscriber};
use super::display::{DisplayPlan, VramSlot};
use super::nic::{NicSubscriber, SharedE1000};
use super::usb::{UsbHid, XhciPlan};
use super::watchdog::WatchdogPlan;
use super::{VirtioSlot, VirtioSubscriber};
use crate::event_loop::Subscriber;
use crate::events::{Event, EventSender};
use crate::interrupts::{GsiRouting, KvmLevelLine, MsiRoutes, ResampledLine};
use crate::ioevents::{IoSpace, Notifiers};
use crate::VmmError;

/// A bridge's windows are 1 MiB grained.
const WINDOW: u64 = 1 << 20;

/// A bridge's memory and prefetchable windows: (base, length) each.
#[derive(Clone, Copy)]
struct Windows {
    mem: (u64, u64),
    pref: (u64, u64),
}

/// A bridge (root port or PCI bridge) as placed.
struct PortPlan {
    cfg: RootPortConfig,
    /// Primary, secondary and subordinate bus numbers, as firmware numbers
    /// them (depth first, in slot order).
    buses: [u8; 3],
    /// Where firmware would put a root port's MSI-X BAR.
    msix_bar: u64,
    /// Its windows, if anything is behind it or it is a hot-plug root
    /// port (firmware reserves them too): those of the bridge on the root
    /// bus above it, which holds every BAR behind it.
    windows: Option<Windows>,
    /// A root port's MSI-X vector's GSI (hot-plug events).
    msi_gsi: Option<u32>,
}

/// Bus numbers `[primary, secondary, subordinate]` for each of `ports`,
/// as firmware assigns them: depth first from bus 0, each bus's bridges in
/// slot order.
fn bus_numbers(ports: &[RootPortConfig]) -> Vec<[u8; 3]> {
    fn walk(ports: &[RootPortConfig], bus: PciBus, number: u8, next: &mut u8, out: &mut [[u8; 3]]) {
        let mut children: Vec<usize> = (0..ports.len())
            .filter(|&i| ports[i].addr.bus == bus)
            .collect();
        children.sort_by_key(|&i| (ports[i].addr.slot, ports[i].addr.function));
        for i in children {
            *next = next.saturating_add(1);
            let secondary = *next;
            walk(ports, PciBus::Port(i), secondary, next, out);
            out[i] = [number, secondary, *next];
        }
    }
    let mut out = vec![[0; 3]; ports.len()];
    walk(ports, PciBus::Root, 0, &mut 0, &mut out);
    out
}

/// Whether `port` is a root port whose slot hot-plugs.
fn hotplug_port(port: &RootPortConfig) -> bool {
    port.model == PortModel::RootPort && port.hotplug
}

/// Whether `bus` is behind bridge `port` (directly or further down).
fn bus_is_below(ports: &[RootPortConfig], bus: PciBus, port: usize) -> bool {
    let mut bus = bus;
    for _ in 0..=ports.len() {
        let PciBus::Port(i) = bus else { return false };
        if i == port {
            return true;
        }
        let Some(p) = ports.get(i) else { return false };
        bus = p.addr.bus;
    }
    false
}

/// The bridge on the root bus above (or at) `bus`, if `bus` is behind one.
fn top_bridge(ports: &[RootPortConfig], bus: PciBus) -> Option<usize> {
    let mut top = None;
    let mut bus = bus;
    // The parser keeps the chain acyclic; the bound is for safety only.
    for _ in 0..=ports.len() {
        let PciBus::Port(i) = bus else { break };
        top = Some(i);
        bus = ports.get(i)?.addr.bus;
    }
    top
}

/// A virtio-pci function as placed.
pub(super) struct FunctionPlan {
    /// Its index among the device manager's virtio devices.
    pub(super) virtio: usize,
    pub(super) addr: PciAddr,
    pub(super) id: Option<String>,
    pub(super) msi_gsis: Vec<u32>,
    /// Where firmware would put BAR 1 (MSI-X) and BAR 4 (virtio).
    msix_bar: u64,
    virtio_bar: u64,
}

/// An AHCI controller as placed.
struct AhciPlan {
    ahci: Arc<Mutex<Ahci>>,
    addr: PciAddr,
    id: Option<String>,
    msi_gsi: u32,
    /// Where firmware would put ABAR.
    abar: u64,
}

/// pc's PIIX3 IDE as placed (00:01.1).
struct IdePlan {
    ide: Arc<Mutex<Ide>>,
    /// Where firmware would put the bus-master registers (BAR 4).
    bm_bar: u64,
}

/// An emulated NIC that is not virtio, as placed.
struct NicPlan {
    model: NicModel,
    addr: PciAddr,
    id: Option<String>,
    /// Where firmware would put the registers' BAR, the I/O ports' (none
    /// behind a port: rvirt opens no I/O windows), and an e1000e's flash
    /// and MSI-X BARs.
    mmio_bar: u64,
    io_bar: Option<u64>,
    flash_bar: u64,
    msix_bar: u64,
    /// An e1000e's MSI-X vectors' GSIs, then its MSI vector's.
    msi_gsis: Vec<u32>,
}

/// The memory an e1000e takes in a bridge's window: its registers at 0,
/// flash at 128 KiB, MSI-X at 256 KiB (each BAR aligned to its size).
const NIC_BLOCK: u64 = 0x8_0000;

/// Where a NIC's BARs go in a window at `base` (an e1000e; an e1000 never
/// sits behind a bridge).
fn nic_block(base: u64) -> (u64, u64, u64) {
    use rvirt_nic::e1000::e82574::{FLASH_SIZE, MMIO_SIZE};
    (base, base + MMIO_SIZE, base + MMIO_SIZE + FLASH_SIZE)
}

/// The PCI side of the machine, placed once.
pub(crate) struct PciPlan {
    chipset: Chipset,
    ports: Vec<PortPlan>,
    functions: Vec<FunctionPlan>,
    ahci: Vec<AhciPlan>,
    ide: Option<IdePlan>,
    /// [`VmConfig::nics`], in order.
    nics: Vec<NicPlan>,
    /// The ISA IRQs a PIRQ routing register may pick: those no other
    /// device drives.
    isa_irqs: Vec<u32>,
    mem64: (u64, u64),
    /// Where RAM below 4 GiB ends.
    ram_low: u64,
    /// The display device, if any.
    display: Option<DisplayPlan>,
    /// The watchdog, if any.
    watchdog: Option<WatchdogPlan>,
    /// The USB controllers (`-device qemu-xhci`), and the HID devices on
    /// them.
    usb: Vec<XhciPlan>,
    usb_hids: Vec<UsbHid>,
}

/// A virtio device to put on PCI: its index, address, id, and vectors.
pub(crate) struct PciRequest {
    pub(crate) virtio: usize,
    pub(crate) addr: PciAddr,
    pub(crate) id: Option<String>,
    pub(crate) vectors: u16,
}

fn placement(source: rvirt_machine::AllocError) -> VmmError {
    VmmError::Placement(source)
}

/// How many PIRQ wires a chipset has.
fn wires(chipset: Chipset) -> u32 {
    match chipset {
        Chipset::Q35 => 8,
        _ => 4,
    }
}

/// The PIRQ wire of pin `pin` of the root-bus slot `slot`.
fn pirq(chipset: Chipset, slot: u8, pin: u8) -> usize {
    match chipset {
        Chipset::Q35 => rvirt_pci::q35_pirq(slot, pin),
        _ => rvirt_pci::pc_pirq(slot, pin),
    }
}

impl PciPlan {
    /// Takes the PIRQ pins (GSIs 16-23) from `alloc`, before anything else
    /// takes IOAPIC pins.
    pub(crate) fn reserve(cfg: &VmConfig, alloc: &mut SystemAllocator) -> Result<(), VmmError> {
        alloc
            .reserve_gsis(PIRQ_GSI_BASE, wires(cfg.chipset))
            .map_err(placement)?;
        if cfg.chipset == Chipset::I440fx {
            // The PIIX3 IDE's compatibility ports and ISA IRQs 14 and 15:
            // no PIRQ routing register may pick those.
            for l in rvirt_ata::ide::LEGACY {
                alloc.reserve_pio(l.command, 8).map_err(placement)?;
                alloc.reserve_pio(l.control, 1).map_err(placement)?;
            }
            alloc
                .reserve_gsis(rvirt_ata::ide::LEGACY[0].irq, 2)
                .map_err(placement)?;
        }
        Ok(())
    }

    /// Places the root ports, `requests` (in command-line order) and the
    /// AHCI controllers.
    pub(crate) fn new(
        cfg: &VmConfig,
        alloc: &mut SystemAllocator,
        requests: Vec<PciRequest>,
        ata: &[AtaController],
        ide: Option<Arc<Mutex<Ide>>>,
    ) -> Result<Self, VmmError> {
        let ram = rvirt_machine::layout::RamLayout::for_board(board(cfg.chipset), cfg.mem_size);
        let window64 = ram.mmio64_start();
        let numbers = bus_numbers(&cfg.root_ports);
        let mut ports = Vec::new();
        for (p, buses) in cfg.root_ports.iter().zip(numbers) {
            let msix_bar = match p.model {
                PortModel::RootPort => {
                    let bar = rvirt_pci::bridge::MSIX_BAR_SIZE;
                    alloc.allocate_mmio32(bar, bar).map_err(placement)?.base
                }
                PortModel::PciBridge | PortModel::PcieToPciBridge => 0,
            };
            let msi_gsi = match p.model {
                PortModel::RootPort => Some(alloc.allocate_msi_gsi().map_err(placement)?),
                PortModel::PciBridge | PortModel::PcieToPciBridge => None,
            };
            ports.push(PortPlan {
                cfg: p.clone(),
                buses,
                msix_bar,
                windows: None,
                msi_gsi,
            });
        }
        // Each bridge on the root bus gets windows for every function
        // below it; the bridges below it forward the same windows.
        let tops: Vec<Option<usize>> = requests
            .iter()
            .map(|r| top_bridge(&cfg.root_ports, r.addr.bus))
            .collect();
        let nic_tops: Vec<Option<usize>> = cfg
            .nics
            .iter()
            .map(|n| top_bridge(&cfg.root_ports, n.addr.bus))
            .collect();
        // The watchdog behind a bridge (libvirt's pcie-to-pci-bridge on
        // q35) takes one function's share of its top bridge's windows.
        let watchdog_top = cfg
            .watchdog
            .as_ref()
            .and_then(|w| top_bridge(&cfg.root_ports, w.addr.bus));
        // The USB controllers behind a bridge: their BARs go at the top of
        // the bridge's 32-bit window, above its NICs, one room each.
        let usb_tops: Vec<Option<usize>> = cfg
            .usb_controllers
            .iter()
            .map(|c| top_bridge(&cfg.root_ports, c.addr.bus))
            .collect();
        let mut top_windows: Vec<Option<Windows>> = vec![None; ports.len()];
        // Where each top bridge's NICs start in its memory window: past
        // its virtio functions' MSI-X BARs.
        let mut nic_start = vec![0u64; ports.len()];
        for (t, slot) in top_windows.iter_mut().enumerate() {
            let mut n = tops.iter().filter(|&&x| x == Some(t)).count() as u64
                + u64::from(watchdog_top == Some(t));
            let nics = nic_tops.iter().filter(|&&x| x == Some(t)).count() as u64;
            let usbs = usb_tops.iter().filter(|&&x| x == Some(t)).count() as u64;
            if n == 0 && nics == 0 && usbs == 0 && hotplug_port(&cfg.root_ports[t]) {
                // Room for one function, as SeaBIOS reserves for a hot-plug
                // slot whatever is behind it at start.
                n = 1;
            }
            if n == 0 && nics == 0 && usbs == 0 {
                continue;
            }
            nic_start[t] = (n * MSIX_BAR_SIZE).next_multiple_of(NIC_BLOCK);
            let mem_len = (nic_start[t] + nics * NIC_BLOCK + usbs * super::usb::BAR_ROOM)
                .next_multiple_of(WINDOW);
            let pref_len = (n * VIRTIO_BAR_SIZE).next_multiple_of(WINDOW).max(WINDOW);
            let mem = alloc.allocate_mmio32(mem_len, WINDOW).map_err(placement)?;
            let pref = alloc.allocate_mmio64(pref_len, WINDOW).map_err(placement)?;
            *slot = Some(Windows {
                mem: (mem.base, mem_len),
                pref: (pref.base, pref_len),
            });
        }
        for (i, port) in ports.iter_mut().enumerate() {
            let top = top_bridge(&cfg.root_ports, PciBus::Port(i));
            let watchdog_below = cfg
                .watchdog
                .as_ref()
                .is_some_and(|w| bus_is_below(&cfg.root_ports, w.addr.bus, i));
            if hotplug_port(&port.cfg)
                || watchdog_below
                || requests
                    .iter()
                    .any(|r| bus_is_below(&cfg.root_ports, r.addr.bus, i))
                || cfg
                    .nics
                    .iter()
                    .any(|n| bus_is_below(&cfg.root_ports, n.addr.bus, i))
                || cfg
                    .usb_controllers
                    .iter()
                    .any(|c| bus_is_below(&cfg.root_ports, c.addr.bus, i))
            {
                port.windows = top.and_then(|t| top_windows[t]);
            }
        }
        let mut used = vec![0u64; ports.len()];
        let mut functions = Vec::new();
        for (r, top) in requests.into_iter().zip(tops) {
            let msi_gsis = (0..r.vectors)
                .map(|_| alloc.allocate_msi_gsi())
                .collect::<Result<Vec<_>, _>>()
                .map_err(placement)?;
            let (msix_bar, virtio_bar) = match top.and_then(|t| top_windows[t].map(|w| (t, w))) {
                None => (
                    alloc
                        .allocate_mmio32(MSIX_BAR_SIZE, MSIX_BAR_SIZE)
                        .map_err(placement)?
                        .base,
                    alloc
                        .allocate_mmio64(VIRTIO_BAR_SIZE, VIRTIO_BAR_SIZE)
                        .map_err(placement)?
                        .base,
                ),
                // The next BAR pair in the windows of the bridge above.
                Some((t, w)) => {
                    let k = used[t];
                    used[t] += 1;
                    (w.mem.0 + k * MSIX_BAR_SIZE, w.pref.0 + k * VIRTIO_BAR_SIZE)
                }
            };
            functions.push(FunctionPlan {
                virtio: r.virtio,
                addr: r.addr,
                id: r.id,
                msi_gsis,
                msix_bar,
                virtio_bar,
            });
        }
        let mut ahci = Vec::new();
        for c in ata {
            ahci.push(AhciPlan {
                ahci: c.ahci.clone(),
                addr: c.cfg.addr,
                id: c.cfg.id.clone(),
                msi_gsi: alloc.allocate_msi_gsi().map_err(placement)?,
                abar: alloc
                    .allocate_mmio32(ABAR_SIZE, ABAR_SIZE)
                    .map_err(placement)?
                    .base,
            });
        }
        let ide = match ide {
            Some(ide) => Some(IdePlan {
                ide,
                bm_bar: alloc
                    .allocate_pio(IDE_BM_SIZE, IDE_BM_SIZE)
                    .map_err(placement)?
                    .base,
            }),
            None => None,
        };
        let display = match &cfg.display {
            Some(d) => Some(DisplayPlan::new(d, alloc)?),
            None => None,
        };
        let mut nics = Vec::new();
        let mut nics_in = vec![0u64; ports.len()];
        for (n, top) in cfg.nics.iter().zip(nic_tops) {
            nics.push(NicPlan::new(
                n,
                alloc,
                top.map(|t| {
                    // The next block in the window of the bridge above (the
                    // parser keeps an e1000 on the root bus).
                    let k = nics_in[t];
                    nics_in[t] += 1;
                    let base = top_windows[t].map_or(0, |w| w.mem.0);
                    base + nic_start[t] + k * NIC_BLOCK
                }),
            )?);
        }
        let watchdog = match &cfg.watchdog {
            Some(w) => {
                // Behind a bridge: the next MSI-X-sized share of the top
                // bridge's memory window (its 16 bytes fit, aligned).
                let bar = watchdog_top.and_then(|t| {
                    let w = top_windows[t]?;
                    let k = used[t];
                    used[t] += 1;
                    Some(w.mem.0 + k * MSIX_BAR_SIZE)
                });
                Some(WatchdogPlan::new(w, alloc, bar)?)
            }
            None => None,
        };
        let mut usb_below = vec![0u64; ports.len()];
        let usb_bars: Vec<Option<u64>> = usb_tops
            .iter()
            .map(|top| {
                let (t, w) = top.and_then(|t| top_windows[t].map(|w| (t, w)))?;
                usb_below[t] += 1;
                Some(w.mem.0 + w.mem.1 - usb_below[t] * super::usb::BAR_ROOM)
            })
            .collect();
        let (usb, usb_hids) = super::usb::plan(cfg, alloc, &usb_bars)?;
        let isa_irqs = alloc.free_gsis().into_iter().filter(|&g| g < 16).collect();
        Ok(PciPlan {
            display,
            watchdog,
            usb,
            usb_hids,
            chipset: cfg.chipset,
            ports,
            functions,
            ahci,
            ide,
            nics,
            isa_irqs,
            mem64: (window64, window64 + layout::MMIO64_SIZE - 1),
            ram_low: ram.low,
        })
    }

    /// Builds this boot's segment over `pio` and `mmio`, wires it to the
    /// machine, and adds its subscribers and DSDT node.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attach(
        &self,
        machine: &Machine,
        pio: &Arc<Bus>,
        mmio: &Arc<Bus>,
        pm: SharedDevice,
        reset_control: Option<SharedDevice>,
        virtio: &[VirtioSlot],
        nics: &[SharedE1000],
        events: EventSender,
        watchdog: Option<SharedFunction>,
        subscribers: &mut Vec<Box<dyn Subscriber>>,
        platform: &mut AcpiConfig,
    ) -> Result<PciWiring, VmmError> {
        let vm = machine.vm_fd();
        let kvm = |what: &'static str| move |source| VmmError::Setup { what, source };
        let routing = GsiRouting::new(vm.clone());
        // With firmware, the functions come up as at reset and firmware
        // programs them (as on QEMU); the PAM registers drive its
        // shadowing of the BIOS area. Without, rvirt plays firmware.
        let bios = machine.bios_area().cloned();
        let preset = match bios {
            Some(_) => Preset::Reset,
            None => Preset::DirectBoot,
        };
        let pam_hook = || -> Option<Arc<dyn PamHook>> {
            bios.clone()
                .map(|area| Arc::new(BiosPam(area)) as Arc<dyn PamHook>)
        };

        // INTx: a resampled level line per PIRQ wire, and level lines on
        // the ISA IRQs a routing register may pick.
        let mut gsi_lines: Vec<Arc<dyn InterruptLine>> = Vec::new();
        for w in 0..wires(self.chipset) {
            let line = ResampledLine::new(vm.clone(), PIRQ_GSI_BASE + w)
                .map_err(kvm("a PCI interrupt line"))?;
            subscribers.push(line.subscriber());
            gsi_lines.push(line);
        }
        let mut isa_lines: Vec<Option<Arc<dyn InterruptLine>>> = vec![None; 16];
        for &irq in &self.isa_irqs {
            isa_lines[irq as usize] = Some(Arc::new(KvmLevelLine::new(vm.clone(), irq)));
        }
        let router = PirqRouter::new(gsi_lines, isa_lines);

        // The virtio functions' fallible parts first: MSI routes and
        // ioeventfds.
        let notifiers = Arc::new(PciNotifiers {
            vm: vm.clone(),
            by_function: Mutex::new(BTreeMap::new()),
            vram: Mutex::new(None),
            events,
        });
        let mut transports = Vec::new();
        let mut wired = Vec::new();
        for f in &self.functions {
            let slot = &virtio[f.virtio];
            slot.device
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reset();
            let (transport, n, sub, w) = self
                .wire_function(vm, machine.memory(), &routing, &router, f, slot)
                .map_err(kvm("a virtio-pci function's irqfds and ioeventfds"))?;
            subscribers.push(sub);
            transports.push((transport, n));
            wired.push(w);
        }

        // The AHCI controllers: this boot's memory, MSI route, INTx pin
        // and the kick that wakes the device thread.
        for a in &self.ahci {
            let msi = MsiRoutes::new(vm, routing.clone(), &[a.msi_gsi])
                .map_err(kvm("the AHCI MSI vector's irqfd"))?;
            let kick = EventFd::new(EFD_NONBLOCK).map_err(kvm("an AHCI eventfd"))?;
            let wake = kick.try_clone().map_err(kvm("an AHCI eventfd"))?;
            lock_ahci(&a.ahci).attach(AhciWiring {
                memory: machine.memory().clone(),
                msi: Arc::new(msi),
                intx: router.source(self.wire_of(&a.addr, 0)),
                kick: Some(wake),
            });
            subscribers.push(Box::new(AtaSubscriber {
                ctrl: a.ahci.clone(),
                kick,
            }));
        }
        // The PIIX3 IDE: this boot's memory, ISA IRQs 14 and 15, the kick,
        // and the compatibility ports (decoded whatever the PCI command
        // register says, as PIIX3 in legacy mode and QEMU do).
        if let Some(p) = &self.ide {
            let kick = EventFd::new(EFD_NONBLOCK).map_err(kvm("an IDE eventfd"))?;
            let wake = kick.try_clone().map_err(kvm("an IDE eventfd"))?;
            let line = |n: usize| -> Arc<dyn InterruptLine> {
                Arc::new(KvmLevelLine::new(vm.clone(), IDE_LEGACY[n].irq))
            };
            lock_ide(&p.ide).attach(IdeWiring {
                memory: machine.memory().clone(),
                irqs: [line(0), line(1)],
                kick: Some(wake),
            });
            subscribers.push(Box::new(AtaSubscriber {
                ctrl: p.ide.clone(),
                kick,
            }));
            for (c, l) in IDE_LEGACY.iter().enumerate() {
                let block: SharedDevice = Arc::new(Mutex::new(IdePorts {
                    ide: p.ide.clone(),
                    channel: c,
                    control: false,
                }));
                let control: SharedDevice = Arc::new(Mutex::new(IdePorts {
                    ide: p.ide.clone(),
                    channel: c,
                    control: true,
                }));
                // Reserved in the allocator ([`PciPlan::reserve`]).
                pio.insert(block, u64::from(l.command), 8)
                    .expect("the IDE ports overlap a legacy device");
                pio.insert(control, u64::from(l.control), 1)
                    .expect("the IDE ports overlap a legacy device");
            }
        }
        // The NICs: this boot's RAM, INTx pin and (e1000e) MSI-X and MSI
        // routes, a fresh function.
        for (plan, device) in self.nics.iter().zip(nics) {
            let pin = router.source(self.wire_of(&plan.addr, 0));
            let mut d = device.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((msi, msix)) = plan.msi_gsis.split_last() {
                let msix = MsiRoutes::new(vm, routing.clone(), msix)
                    .map_err(kvm("the e1000e's MSI-X irqfds"))?;
                let msi = MsiRoutes::new(vm, routing.clone(), std::slice::from_ref(msi))
                    .map_err(kvm("the e1000e's MSI irqfd"))?;
                d.set_msi_vectors(Arc::new(msix), Arc::new(msi));
            }
            d.attach(machine.memory().clone(), pin);
            subscribers.push(Box::new(NicSubscriber {
                device: device.clone(),
                kick: d.kick_fd(),
            }));
        }

        // The USB controllers: this boot's memory, MSI-X routes and pin.
        let mut usb_functions = Vec::new();
        for x in &self.usb {
            let wire = self.wire_of(&x.addr, 0);
            let direct = (preset == Preset::DirectBoot).then_some(PIRQ_GSI_BASE + wire as u32);
            let f = x
                .attach(
                    vm,
                    routing.clone(),
                    machine.memory(),
                    router.source(wire),
                    direct,
                )
                .map_err(kvm("the xHCI's MSI-X irqfds"))?;
            usb_functions.push(f);
            subscribers.push(x.subscriber());
        }

        let mut port_msi: Vec<Option<Arc<dyn rvirt_platform::MsiVectors>>> = Vec::new();
        for p in &self.ports {
            let msi = match p.msi_gsi {
                Some(gsi) => Some(Arc::new(
                    MsiRoutes::new(vm, routing.clone(), &[gsi])
                        .map_err(kvm("a root port's MSI-X irqfd"))?,
                ) as Arc<dyn rvirt_platform::MsiVectors>),
                None => None,
            };
            port_msi.push(msi);
        }
        let mut functions = BTreeMap::new();
        let mut ports_out = Vec::new();
        let mut failed = None;
        let observer: Arc<dyn BarObserver> = notifiers.clone();
        if let Some(d) = &self.display {
            d.attach_legacy(pio, mmio)?;
        }
        let segment = Arc::new_cyclic(|me: &Weak<PciSegment>| {
            let mut b = SegmentBuilder::new();
            let mut add = |b: &mut SegmentBuilder,
                           info: FunctionInfo,
                           f: SharedFunction,
                           port: bool| match b.add(info, f, port) {
                Ok(id) => Some(id),
                Err(e) => {
                    failed.get_or_insert(e);
                    None
                }
            };
            let root = |slot, function| FunctionInfo {
                id: None,
                parent: None,
                slot,
                function,
            };
            let pm = Placement::new(
                pio.clone(),
                pm,
                rvirt_devices::acpi_pm::LEN,
                Some(u64::from(PM_BASE)),
            );
            match self.chipset {
                Chipset::Q35 => {
                    let ecam: SharedDevice = Arc::new(Mutex::new(Ecam::new(me.clone())));
                    let ecam = Placement::new(mmio.clone(), ecam, ECAM_SIZE, None);
                    let mch = q35::HostBridge::new(ecam, preset, pam_hook());
                    add(&mut b, root(0, 0), Arc::new(Mutex::new(mch)), false);
                    let lpc = ich9::Lpc::new(router.clone(), pm, preset);
                    add(&mut b, root(31, 0), Arc::new(Mutex::new(lpc)), false);
                }
                _ => {
                    add(
                        &mut b,
                        root(0, 0),
                        Arc::new(Mutex::new(i440fx::HostBridge::new(pam_hook()))),
                        false,
                    );
                    add(
                        &mut b,
                        root(1, 0),
                        Arc::new(Mutex::new(piix::IsaBridge::new(router.clone()))),
                        false,
                    );
                    if let Some(p) = &self.ide {
                        let f: SharedFunction = p.ide.clone();
                        if preset == Preset::DirectBoot {
                            let mut f = lock(&f);
                            let cfg = f.config_mut();
                            cfg.set_bar_address(usize::from(IDE_BM_BAR), p.bm_bar);
                            cfg.set_u16(reg::COMMAND, command::IO | command::MASTER);
                        }
                        add(&mut b, root(1, 1), f, false);
                    }
                    let pmf = piix::PowerManagement::new(pm, preset);
                    add(&mut b, root(1, 3), Arc::new(Mutex::new(pmf)), false);
                }
            }
            let mut port_ids: Vec<Option<FunctionId>> = Vec::new();
            for (p, msi) in self.ports.iter().zip(port_msi) {
                let i = port_ids.len();
                let f: SharedFunction = match (p.cfg.model, msi) {
                    (PortModel::RootPort, Some(msi)) => {
                        let below = PciBus::Port(i);
                        let occupied = self.functions.iter().any(|f| f.addr.bus == below)
                            || self.ports.iter().any(|q| q.cfg.addr.bus == below);
                        let wire = self.wire_of(&p.cfg.addr, 0);
                        let mut rp = RootPort::new(p.cfg.port, p.cfg.slot, occupied)
                            .wire(msi, router.source(wire));
                        rp.set_hotplug(p.cfg.hotplug);
                        Arc::new(Mutex::new(rp))
                    }
                    // A root port's plan always has a vector; without one it
                    // would signal nothing.
                    (PortModel::RootPort, None) => {
                        Arc::new(Mutex::new(RootPort::new(p.cfg.port, p.cfg.slot, false)))
                    }
                    (PortModel::PciBridge, _) => {
                        Arc::new(Mutex::new(PciBridge::new(BridgeModel::PciBridge {
                            chassis: p.cfg.chassis,
                        })))
                    }
                    (PortModel::PcieToPciBridge, _) => {
                        Arc::new(Mutex::new(PciBridge::new(BridgeModel::PcieToPci)))
                    }
                };
                let gsi = PIRQ_GSI_BASE + self.wire_of(&p.cfg.addr, 0) as u32;
                if preset == Preset::DirectBoot {
                    program_port(&f, p, gsi);
                }
                let info = FunctionInfo {
                    id: Some(p.cfg.id.clone()),
                    parent: match p.cfg.addr.bus {
                        PciBus::Root => None,
                        PciBus::Port(j) => port_ids.get(j).copied().flatten(),
                    },
                    slot: p.cfg.addr.slot,
                    function: p.cfg.addr.function,
                };
                set_multifunction(&f, p.cfg.addr.multifunction);
                let express_port = p.cfg.model == PortModel::RootPort;
                port_ids.push(add(&mut b, info, f, express_port));
            }
            for a in &self.ahci {
                let f: SharedFunction = a.ahci.clone();
                if preset == Preset::DirectBoot {
                    let gsi = PIRQ_GSI_BASE + self.wire_of(&a.addr, 0) as u32;
                    let mut f = lock(&f);
                    let cfg = f.config_mut();
                    cfg.set_bar_address(usize::from(ABAR), a.abar);
                    cfg.set_u16(reg::COMMAND, command::MEMORY | command::MASTER);
                    cfg.set_u8(reg::INTERRUPT_LINE, gsi as u8);
                }
                set_multifunction(&f, a.addr.multifunction);
                let info = FunctionInfo {
                    id: a.id.clone(),
                    parent: match a.addr.bus {
                        PciBus::Root => None,
                        PciBus::Port(i) => port_ids[i],
                    },
                    slot: a.addr.slot,
                    function: a.addr.function,
                };
                add(&mut b, info, f, false);
            }
            if let Some(d) = &self.display {
                let (f, mut slot) = d.attach(machine, preset == Preset::DirectBoot);
                set_multifunction(&f, d.addr.multifunction);
                let info = FunctionInfo {
                    id: d.id.clone(),
                    parent: None,
                    slot: d.addr.slot,
                    function: d.addr.function,
                };
                slot.id = add(&mut b, info, f, false);
                *notifiers.vram.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
            }
            for ((plan, (transport, n)), w) in self.functions.iter().zip(transports).zip(wired) {
                let f: SharedFunction = Arc::new(Mutex::new(transport));
                let gsi = PIRQ_GSI_BASE + self.wire_of(&plan.addr, 0) as u32;
                if preset == Preset::DirectBoot {
                    program_function(&f, plan, gsi);
                }
                set_multifunction(&f, plan.addr.multifunction);
                let parent = match plan.addr.bus {
                    PciBus::Root => None,
                    PciBus::Port(i) => port_ids[i],
                };
                let info = FunctionInfo {
                    id: plan.id.clone(),
                    parent,
                    slot: plan.addr.slot,
                    function: plan.addr.function,
                };
                if let Some(id) = add(&mut b, info, f, false) {
                    notifiers.insert(id, n);
                    functions.insert(id, w);
                }
            }
            for (plan, device) in self.nics.iter().zip(nics) {
                let f: SharedFunction = device.clone();
                if preset == Preset::DirectBoot {
                    let gsi = PIRQ_GSI_BASE + self.wire_of(&plan.addr, 0) as u32;
                    program_nic(&f, plan, gsi);
                }
                set_multifunction(&f, plan.addr.multifunction);
                let info = FunctionInfo {
                    id: plan.id.clone(),
                    parent: match plan.addr.bus {
                        PciBus::Root => None,
                        PciBus::Port(i) => port_ids.get(i).copied().flatten(),
                    },
                    slot: plan.addr.slot,
                    function: plan.addr.function,
                };
                add(&mut b, info, f, false);
            }
            if let (Some(plan), Some(f)) = (&self.watchdog, watchdog) {
                if preset == Preset::DirectBoot {
                    let mut g = lock(&f);
                    let cfg = g.config_mut();
                    cfg.set_bar_address(usize::from(rvirt_devices::i6300esb::BAR), plan.bar);
                    cfg.set_u16(reg::COMMAND, command::MEMORY);
                }
                set_multifunction(&f, plan.addr.multifunction);
                let parent = match plan.addr.bus {
                    PciBus::Root => None,
                    PciBus::Port(i) => port_ids[i],
                };
                let info = FunctionInfo {
                    id: plan.id.clone(),
                    parent,
                    slot: plan.addr.slot,
                    function: plan.addr.function,
                };
                add(&mut b, info, f, false);
            }
            for (x, f) in self.usb.iter().zip(&usb_functions) {
                set_multifunction(f, x.addr.multifunction);
                let info = FunctionInfo {
                    id: x.id.clone(),
                    parent: match x.addr.bus {
                        PciBus::Root => None,
                        PciBus::Port(i) => port_ids[i],
                    },
                    slot: x.addr.slot,
                    function: x.addr.function,
                };
                add(&mut b, info, f.clone(), false);
            }
            ports_out = port_ids;
            b.build(pio.clone(), mmio.clone(), Some(observer))
        });
        if let Some(e) = failed {
            return Err(VmmError::Pci(e));
        }
        segment.apply_all();
        let config_io = ConfigIo::new(Arc::downgrade(&segment), reset_control);
        // The port range was reserved in the allocator: an overlap is a bug
        // in the layout.
        pio.insert(
            Arc::new(Mutex::new(config_io)),
            u64::from(CONFIG_IO_BASE),
            u64::from(CONFIG_IO_LEN),
        )
        .expect("CONFIG_ADDRESS overlaps a legacy device");

        let q35 = self.chipset == Chipset::Q35;
        let routes = (0..32u8)
            .flat_map(|slot| (0..4u8).map(move |pin| (slot, pin)))
            .map(|(slot, pin)| Route {
                slot,
                pin,
                gsi: PIRQ_GSI_BASE + pirq(self.chipset, slot, pin) as u32,
            })
            .collect();
        let bridge = RootBridge {
            express: q35,
            mem32: (
                // Firmware puts 32-bit BARs where it likes above RAM
                // (SeaBIOS: from 2 or 3 GiB, or above q35's ECAM), so the
                // window starts where RAM ends, as QEMU's; rvirt's own
                // placement keeps to the allocator's window.
                match preset {
                    Preset::Reset => self.ram_low as u32,
                    Preset::DirectBoot => layout::PCI_MMIO32_START as u32,
                },
                layout::IOAPIC_START as u32 - 1,
            ),
            mem64: Some(self.mem64),
            routes,
            ecam: q35.then_some((ECAM_BASE, ECAM_SIZE)),
        };
        match preset {
            // rvirt placed the BARs inside its own window.
            Preset::DirectBoot => platform.devices.push(Box::new(bridge)),
            // Firmware places them: the 64-bit window is computed as
            // QEMU's from where it put them, each time the tables are
            // built (again when firmware first reads them).
            Preset::Reset => platform.devices.push(Box::new(LiveRootBridge {
                bridge,
                segment: Arc::downgrade(&segment),
                floor: self.mem64.0,
                size: if q35 { Q35_HOLE64_SIZE } else { PC_HOLE64_SIZE },
            })),
        }
        if q35 {
            platform.ecam = Some((ECAM_BASE, 0xff));
        }
        Ok(PciWiring {
            segment,
            notifiers,
            routing,
            router,
            vm: vm.clone(),
            memory: machine.memory().clone(),
            ports: ports_out,
            functions: Mutex::new(functions),
        })
    }

    /// The transport of `plan`'s function on this boot's machine, with its
    /// ioeventfds (registered nowhere yet), its subscriber and what is
    /// released when it leaves.
    fn wire_function(
        &self,
        vm: &VmFd,
        memory: &rvirt_virtio::Memory,
        routing: &Arc<GsiRouting>,
        router: &Arc<PirqRouter>,
        plan: &FunctionPlan,
        slot: &VirtioSlot,
    ) -> std::io::Result<(PciTransport, Notifiers, Box<dyn Subscriber>, WiredFunction)> {
        let msi = Arc::new(MsiRoutes::new(vm, routing.clone(), &plan.msi_gsis)?);
        // PCI Express only on a root port: behind a PCI bridge the bus is
        // conventional, as on pc's root bus.
        let express = matches!(plan.addr.bus,
            PciBus::Port(i) if self.ports[i].cfg.model == PortModel::RootPort);
        let pin = router.source(self.wire_of(&plan.addr, 0));
        let transport = PciTransport::new(
            slot.device.clone(),
            memory.clone(),
            msi.clone(),
            pin.clone(),
            if express {
                PciPlacement::Express
            } else {
                PciPlacement::Conventional
            },
        );
        let n = Notifiers::new(IoSpace::Mmio, &transport.notify_regions())?;
        let kicks = n.kicks()?;
        let sub = Box::new(VirtioSubscriber {
            device: slot.device.clone(),
            kicks,
            retired: slot.retired.clone(),
        });
        let wired = WiredFunction {
            msi,
            pin,
            device: slot.device.clone(),
            retired: slot.retired.clone(),
        };
        Ok((transport, n, sub, wired))
    }

    /// The function behind root port `port`, if any.
    pub(super) fn occupant(&self, port: usize) -> Option<&FunctionPlan> {
        self.functions
            .iter()
            .find(|f| f.addr.bus == PciBus::Port(port))
    }

    /// The function with device id `id`.
    pub(super) fn find(&self, id: &str) -> Option<&FunctionPlan> {
        self.functions.iter().find(|f| f.id.as_deref() == Some(id))
    }

    /// Whether root port `port`'s slot hot-plugs.
    pub(super) fn port_hotplugs(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(|p| p.cfg.hotplug)
    }

    /// Places a function hot-plugged behind a port: firmware's BARs for the
    /// next boots at the start of the port's windows (a hot-plug port has
    /// them whatever is behind it).
    pub(super) fn add_hotplugged(
        &mut self,
        virtio: usize,
        addr: PciAddr,
        id: Option<String>,
        msi_gsis: Vec<u32>,
    ) {
        let (msix_bar, virtio_bar) = match addr.bus {
            PciBus::Port(p) => self.ports[p]
                .windows
                .map(|w| (w.mem.0, w.pref.0))
                .unwrap_or_default(),
            PciBus::Root => (0, 0),
        };
        self.functions.push(FunctionPlan {
            virtio,
            addr,
            id,
            msi_gsis,
            msix_bar,
            virtio_bar,
        });
    }

    /// Forgets the function of virtio device `virtio` (it left the
    /// machine), and renumbers the virtio devices after it; returns it.
    pub(super) fn remove(&mut self, virtio: usize) -> Option<FunctionPlan> {
        let i = self.functions.iter().position(|f| f.virtio == virtio)?;
        let gone = self.functions.remove(i);
        for f in &mut self.functions {
            if f.virtio > gone.virtio {
                f.virtio -= 1;
            }
        }
        Some(gone)
    }

    /// The PIRQ wire pin `pin` of the function at `addr` drives: through
    /// the swizzle of every bridge above it, then the chipset's map of
    /// root slots.
    fn wire_of(&self, addr: &PciAddr, pin: u8) -> usize {
        let (mut bus, mut slot, mut pin) = (addr.bus, addr.slot, pin);
        // The parser keeps the chain acyclic; the bound is for safety only.
        for _ in 0..=self.ports.len() {
            let PciBus::Port(i) = bus else { break };
            let Some(port) = self.ports.get(i) else { break };
            pin = swizzle(slot, pin);
            (bus, slot) = (port.cfg.addr.bus, port.cfg.addr.slot);
        }
        pirq(self.chipset, slot, pin)
    }
}

fn lock_ahci(a: &Mutex<Ahci>) -> std::sync::MutexGuard<'_, Ahci> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_ide(a: &Mutex<Ide>) -> std::sync::MutexGuard<'_, Ide> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

/// A PIIX3 IDE channel's compatibility ports on the I/O bus: its command
/// block (8 ports) or its control block (alternate status / device
/// control).
struct IdePorts {
    ide: Arc<Mutex<Ide>>,
    channel: usize,
    control: bool,
}

impl rvirt_bus::BusDevice for IdePorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let mut ide = lock_ide(&self.ide);
        if self.control {
            data.fill(0);
            if let Some(b) = data.first_mut() {
                *b = ide.read_control(self.channel);
            }
        } else {
            ide.read_command_block(self.channel, offset, data);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut ide = lock_ide(&self.ide);
        if self.control {
            if let Some(&v) = data.first() {
                ide.write_control(self.channel, v);
            }
        } else {
            ide.write_command_block(self.channel, offset, data);
        }
    }
}

/// The host bridge's PAM registers reaching firmware's shadowing of the
/// BIOS area (the mapping is `rvirt_machine::BiosArea`'s).
struct BiosPam(Arc<BiosArea>);

impl PamHook for BiosPam {
    fn pam_changed(&self, range: PamRange, mode: PamMode) {
        let mode = match mode {
            PamMode::Pci => SegmentMode::Rom,
            PamMode::ReadOnly => SegmentMode::RamReadOnly,
            // KVM has no write-only memory; BiosArea serves it as RAM.
            PamMode::WriteOnly | PamMode::ReadWrite => SegmentMode::Ram,
        };
        // A configuration write cannot fail back to the guest: a KVM slot
        // that will not change is logged, and the segment keeps its mode.
        if let Err(e) = self
            .0
            .set(u64::from(range.base), u64::from(range.len), mode)
        {
            tracing::error!(
                base = range.base,
                ?mode,
                "PAM: the BIOS area could not be remapped: {e}"
            );
        }
    }
}

/// The board layout a chipset implies.
pub(crate) fn board(chipset: Chipset) -> rvirt_machine::Board {
    match chipset {
        Chipset::Q35 => rvirt_machine::Board::Q35,
        Chipset::Microvm => rvirt_machine::Board::Microvm,
        _ => rvirt_machine::Board::Pc,
    }
}

fn set_multifunction(f: &SharedFunction, on: bool) {
    if on {
        lock(f).config_mut().set_multifunction(true);
    }
}

/// What firmware leaves in a virtio function: its BARs, decode and bus
/// mastering on, and the Interrupt Line register naming the IOAPIC pin
/// its INTA drives (as the GSI `_PRT` gives; Linux reads `_PRT`, simpler
/// guests this register).
fn program_function(f: &SharedFunction, plan: &FunctionPlan, gsi: u32) {
    let mut f = lock(f);
    let cfg = f.config_mut();
    cfg.set_bar_address(usize::from(MSIX_BAR), plan.msix_bar);
    cfg.set_bar_address(usize::from(VIRTIO_BAR), plan.virtio_bar);
    cfg.set_u16(reg::COMMAND, command::MEMORY | command::MASTER);
    cfg.set_u8(reg::INTERRUPT_LINE, gsi as u8);
}

impl NicPlan {
    /// Places NIC `n`: in the block at `in_window` of the bridge above
    /// it, or from the machine's windows on the root bus.
    fn new(
        n: &rvirt_vmm_config::PciNicConfig,
        alloc: &mut SystemAllocator,
        in_window: Option<u64>,
    ) -> Result<Self, VmmError> {
        use rvirt_nic::e1000::{e82574, IO_SIZE, MMIO_SIZE};
        let mut mem = |len: u64| -> Result<u64, VmmError> {
            Ok(alloc.allocate_mmio32(len, len).map_err(placement)?.base)
        };
        let (mmio_bar, flash_bar, msix_bar) = match (n.model, in_window) {
            (_, Some(base)) => nic_block(base),
            (NicModel::E1000, None) => (mem(MMIO_SIZE)?, 0, 0),
            (NicModel::E1000e, None) => (
                mem(e82574::MMIO_SIZE)?,
                mem(e82574::FLASH_SIZE)?,
                mem(e82574::MSIX_SIZE)?,
            ),
        };
        let io = match n.model {
            NicModel::E1000 => IO_SIZE,
            NicModel::E1000e => e82574::IO_SIZE,
        };
        let io_bar = match in_window {
            Some(_) => None,
            None => Some(alloc.allocate_pio(io, io).map_err(placement)?.base),
        };
        let msi_gsis = match n.model {
            NicModel::E1000 => Vec::new(),
            // Five MSI-X vectors and the MSI vector.
            NicModel::E1000e => (0..=e82574::VECTORS)
                .map(|_| alloc.allocate_msi_gsi())
                .collect::<Result<_, _>>()
                .map_err(placement)?,
        };
        Ok(NicPlan {
            model: n.model,
            addr: n.addr,
            id: n.net.id.clone(),
            mmio_bar,
            io_bar,
            flash_bar,
            msix_bar,
            msi_gsis,
        })
    }
}

/// What firmware leaves in an e1000 or e1000e: its BARs, decode and bus
/// mastering on, the Interrupt Line register.
fn program_nic(f: &SharedFunction, plan: &NicPlan, gsi: u32) {
    use rvirt_nic::e1000::{e82574, IO_BAR, MMIO_BAR};
    let mut f = lock(f);
    let cfg = f.config_mut();
    let io_bar = match plan.model {
        NicModel::E1000 => IO_BAR,
        NicModel::E1000e => {
            cfg.set_bar_address(usize::from(e82574::FLASH_BAR), plan.flash_bar);
            cfg.set_bar_address(usize::from(e82574::MSIX_BAR), plan.msix_bar);
            e82574::IO_BAR
        }
    };
    cfg.set_bar_address(usize::from(MMIO_BAR), plan.mmio_bar);
    let mut cmd = command::MEMORY | command::MASTER;
    if let Some(io) = plan.io_bar {
        cfg.set_bar_address(usize::from(io_bar), io);
        cmd |= command::IO;
    }
    cfg.set_u16(reg::COMMAND, cmd);
    cfg.set_u8(reg::INTERRUPT_LINE, gsi as u8);
}

/// What firmware leaves in a bridge: its bus numbers, windows around what
/// is behind it, a root port's MSI-X BAR, the Interrupt Line if it has a
/// pin.
fn program_port(f: &SharedFunction, plan: &PortPlan, gsi: u32) {
    let mut f = lock(f);
    let cfg = f.config_mut();
    if cfg.interrupt_pin() != 0 {
        cfg.set_u8(reg::INTERRUPT_LINE, gsi as u8);
    }
    if plan.cfg.model == PortModel::RootPort {
        cfg.set_bar_address(usize::from(rvirt_pci::bridge::MSIX_BAR), plan.msix_bar);
    }
    cfg.set_bytes(reg::PRIMARY_BUS, &plan.buses);
    if let Some(w) = plan.windows {
        let limit = |(base, len): (u64, u64)| base + len - 1;
        let (mem, pref) = (w.mem.0, w.pref.0);
        cfg.set_u16(reg::MEMORY_BASE, ((mem >> 16) & 0xfff0) as u16);
        cfg.set_u16(reg::MEMORY_LIMIT, ((limit(w.mem) >> 16) & 0xfff0) as u16);
        cfg.set_u16(reg::PREF_MEMORY_BASE, (((pref >> 16) & 0xfff0) | 1) as u16);
        cfg.set_u16(
            reg::PREF_MEMORY_LIMIT,
            (((limit(w.pref) >> 16) & 0xfff0) | 1) as u16,
        );
        cfg.set_u32(reg::PREF_BASE_UPPER32, (pref >> 32) as u32);
        cfg.set_u32(reg::PREF_LIMIT_UPPER32, (limit(w.pref) >> 32) as u32);
    }
    cfg.set_u16(
        reg::COMMAND,
        command::IO | command::MEMORY | command::MASTER,
    );
}

/// The ioeventfds of the virtio functions' notify areas, moved with BAR 4;
/// the display's VRAM slot, moved with its BAR 0; and where the segment's
/// news of a function taken out goes (the main loop, which finishes the
/// removal).
pub(crate) struct PciNotifiers {
    vm: Arc<VmFd>,
    by_function: Mutex<BTreeMap<FunctionId, Notifiers>>,
    vram: Mutex<Option<VramSlot>>,
    events: EventSender,
}

impl PciNotifiers {
    fn insert(&self, id: FunctionId, n: Notifiers) {
        self.by_function
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, n);
    }
}

impl BarObserver for PciNotifiers {
    fn bar_moved(&self, function: FunctionId, bar: u8, mapping: Option<BarMapping>) {
        if let Some(v) = &*self.vram.lock().unwrap_or_else(|p| p.into_inner()) {
            v.bar_moved(function, bar, mapping);
        }
        if bar != VIRTIO_BAR {
            return;
        }
        let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&function) {
            if let Err(error) = n.place(&self.vm, mapping.map(|m| m.base)) {
                // The kicks then reach the transport through the bus
                // (slower, still correct).
                tracing::warn!(%error, "cannot move a virtio-pci device's ioeventfds");
            }
        }
    }

    /// Runs on the vCPU thread whose configuration write powered the slot
    /// off: the BARs (and so the ioeventfds) are gone already; the rest
    /// is the main loop's.
    fn unplugged(&self, function: FunctionId, info: &FunctionInfo, _: SharedFunction) {
        self.by_function
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&function);
        self.events.post(Event::PciUnplugged {
            function,
            id: info.id.clone(),
        });
    }
}

/// What of a virtio function's wiring outlives its removal from the
/// segment until the main loop releases it.
pub(super) struct WiredFunction {
    msi: Arc<MsiRoutes>,
    pin: Arc<rvirt_pci::intx::IntxPin>,
    device: super::virtio::SharedVirtio,
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl WiredFunction {
    /// The function left: its INTx let go, its vectors' routes and irqfds
    /// removed, the device reset (it touches guest memory no more) and its
    /// subscriber retired; returns the device's retirement flag.
    fn release(&self) -> Arc<std::sync::atomic::AtomicBool> {
        let _ = rvirt_platform::InterruptLine::lower(&*self.pin);
        self.msi.release();
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        self.retired.clone()
    }
}

impl PciPlan {
    /// The USB HID devices, in command-line order.
    pub(crate) fn usb_hids(&self) -> &[UsbHid] {
        &self.usb_hids
    }

    /// The watchdog, if the VM has one.
    pub(crate) fn watchdog(&self) -> Option<&WatchdogPlan> {
        self.watchdog.as_ref()
    }

    /// What the VNC server shows, with a display device.
    pub(crate) fn screen(&self) -> Option<Arc<rvirt_display::screen::Screen>> {
        self.display.as_ref().map(DisplayPlan::screen)
    }
}

/// What a boot's PCI side keeps alive: the segment (with its functions
/// and the buses' BAR ranges), the ioeventfds, the GSI routing; and what
/// a hot-plug needs to wire a new function.
pub(crate) struct PciWiring {
    pub(crate) segment: Arc<PciSegment>,
    notifiers: Arc<PciNotifiers>,
    routing: Arc<GsiRouting>,
    router: Arc<PirqRouter>,
    vm: Arc<VmFd>,
    memory: rvirt_virtio::Memory,
    /// Each root port's function.
    ports: Vec<Option<FunctionId>>,
    /// The virtio functions present.
    functions: Mutex<BTreeMap<FunctionId, WiredFunction>>,
}

impl PciWiring {
    /// Puts `plan`'s function (a device hot-plugged behind a root port) on
    /// this boot's machine: wired, on the segment, its port told, its
    /// subscriber on `event_loop`.
    pub(super) fn plug(
        &self,
        pci: &PciPlan,
        plan: &FunctionPlan,
        slot: &VirtioSlot,
        event_loop: &crate::event_loop::EventLoop,
    ) -> Result<FunctionId, String> {
        let PciBus::Port(p) = plan.addr.bus else {
            return Err("only a root port's slot hot-plugs".into());
        };
        let parent = self.ports.get(p).copied().flatten();
        let (transport, n, sub, w) = pci
            .wire_function(
                &self.vm,
                &self.memory,
                &self.routing,
                &self.router,
                plan,
                slot,
            )
            .map_err(|e| format!("cannot wire the device: {e}"))?;
        let info = FunctionInfo {
            id: plan.id.clone(),
            parent,
            slot: plan.addr.slot,
            function: plan.addr.function,
        };
        let f: SharedFunction = Arc::new(Mutex::new(transport));
        let id = match self.segment.plug(info, f) {
            Ok(id) => id,
            Err(e) => {
                w.msi.release();
                return Err(e.to_string());
            }
        };
        self.notifiers.insert(id, n);
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, w);
        event_loop.add(sub);
        Ok(id)
    }

    /// `device_del` of what is behind root port `port`: its attention
    /// button is pressed; false if the port is not on this machine.
    pub(super) fn press_button(&self, port: usize) -> bool {
        let Some(f) = self.ports.get(port).copied().flatten() else {
            return false;
        };
        let Some(f) = self.segment.function(f) else {
            return false;
        };
        let mut f = lock(&f);
        match f.hotplug_port() {
            Some(p) => {
                p.push_attention_button();
                true
            }
            None => false,
        }
    }

    /// The function `function` left the segment: its interrupts are
    /// released, its device reset and retired; the device's retirement
    /// flag names it among the device manager's.
    pub(super) fn released(
        &self,
        function: FunctionId,
    ) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        let w = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&function);
        w.map(|w| w.release())
    }
}

/// QEMU's names of the PCI classes (its `pci_class_descriptions`) that
/// rvirt's and QEMU's pc and q35 functions have.
fn class_desc(class: u16) -> Option<&'static str> {
    Some(match class {
        0x0100 => "SCSI controller",
        0x0101 => "IDE controller",
        0x0106 => "SATA controller",
        0x0180 => "Storage controller",
        0x0200 => "Ethernet controller",
        0x0300 => "VGA controller",
        0x0380 => "Display controller",
        0x0600 => "Host bridge",
        0x0601 => "ISA bridge",
        0x0604 => "PCI bridge",
        0x0680 => "Bridge",
        0x0c03 => "USB controller",
        0x0c05 => "SMBus",
        _ => return None,
    })
}

/// `query-pci` for `segment`, in QEMU's shape: the root bus, and behind
/// each bridge whose secondary bus is programmed, its bus.
pub(crate) fn query(segment: &PciSegment) -> Vec<rvirt_qmp::PciInfo> {
    vec![rvirt_qmp::PciInfo {
        bus: 0,
        devices: query_bus(segment, None, 0),
    }]
}

fn query_bus(
    segment: &PciSegment,
    parent: Option<FunctionId>,
    number: u8,
) -> Vec<rvirt_qmp::PciDeviceInfo> {
    use rvirt_qmp::{
        PciBridgeInfo, PciBusInfo, PciDeviceClass, PciDeviceId, PciDeviceInfo, PciDeviceRegion,
        PciMemoryRange,
    };
    let mut ids: Vec<(FunctionId, FunctionInfo)> = segment
        .functions()
        .into_iter()
        .filter(|(_, i)| i.parent == parent)
        .collect();
    ids.sort_by_key(|(_, info)| info.devfn());
    let mut out = Vec::new();
    for (id, info) in ids {
        let mapped = segment.mapped(id);
        let Some(function) = segment.function(id) else {
            continue;
        };
        let (device, bridge_regs) = {
            let f = lock(&function);
            let c = f.config();
            let bridge = segment.is_bridge(id);
            let class = (c.read_u32(reg::REVISION) >> 16) as u16;
            let pin = c.interrupt_pin();
            let regions = (0..c.bar_count())
                .filter_map(|i| c.bar(i).map(|b| (i, b)))
                .map(|(i, b)| {
                    let memory = b.kind != rvirt_pci::BarKind::Io;
                    PciDeviceRegion {
                        bar: i as i64,
                        kind: if memory { "memory" } else { "io" }.into(),
                        address: mapped[i].map_or(-1, |m| m.base as i64),
                        size: b.size as i64,
                        prefetch: memory.then_some(b.prefetchable),
                        mem_type_64: memory.then_some(b.kind == rvirt_pci::BarKind::Mem64),
                    }
                })
                .collect();
            let (subsystem, subsystem_vendor) = if bridge {
                (None, None)
            } else {
                (
                    Some(i64::from(c.read_u16(reg::SUBSYSTEM_ID))),
                    Some(i64::from(c.read_u16(reg::SUBSYSTEM_VENDOR_ID))),
                )
            };
            let device = PciDeviceInfo {
                bus: i64::from(number),
                slot: i64::from(info.slot),
                function: i64::from(info.function),
                class_info: PciDeviceClass {
                    desc: class_desc(class).map(str::to_string),
                    class: i64::from(class),
                },
                id: PciDeviceId {
                    device: i64::from(c.read_u16(reg::DEVICE_ID)),
                    vendor: i64::from(c.read_u16(reg::VENDOR_ID)),
                    subsystem,
                    subsystem_vendor,
                },
                irq: (pin != 0).then(|| i64::from(c.read_u8(reg::INTERRUPT_LINE))),
                irq_pin: i64::from(pin),
                qdev_id: info.id.clone().unwrap_or_default(),
                pci_bridge: None,
                regions,
            };
            let regs = bridge.then(|| {
                let u8_ = |r| u64::from(c.read_u8(r));
                let u16_ = |r| u64::from(c.read_u16(r));
                let u32_ = |r| u64::from(c.read_u32(r));
                (
                    c.bus_numbers(),
                    (
                        (u8_(reg::IO_BASE) & 0xf0) << 8,
                        ((u8_(reg::IO_LIMIT) & 0xf0) << 8) | 0xfff,
                    ),
                    (
                        (u16_(reg::MEMORY_BASE) & 0xfff0) << 16,
                        ((u16_(reg::MEMORY_LIMIT) & 0xfff0) << 16) | 0xf_ffff,
                    ),
                    (
                        ((u16_(reg::PREF_MEMORY_BASE) & 0xfff0) << 16)
                            | (u32_(reg::PREF_BASE_UPPER32) << 32),
                        ((u16_(reg::PREF_MEMORY_LIMIT) & 0xfff0) << 16)
                            | 0xf_ffff
                            | (u32_(reg::PREF_LIMIT_UPPER32) << 32),
                    ),
                )
            });
            (device, regs)
        };
        let mut device = device;
        if let Some(((secondary, subordinate), io, mem, pref)) = bridge_regs {
            let range = |(base, limit): (u64, u64)| PciMemoryRange {
                base: base as i64,
                limit: limit as i64,
            };
            device.pci_bridge = Some(PciBridgeInfo {
                bus: PciBusInfo {
                    number: i64::from(number),
                    secondary: i64::from(secondary),
                    subordinate: i64::from(subordinate),
                    io_range: range(io),
                    memory_range: range(mem),
                    prefetchable_range: range(pref),
                },
                devices: (secondary != 0).then(|| query_bus(segment, Some(id), secondary)),
            });
        }
        out.push(device);
    }
    out
}
