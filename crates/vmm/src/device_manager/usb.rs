//! USB (`-device qemu-xhci` and `usb-tablet|usb-kbd|usb-mouse` on it):
//! the controllers and their devices built once, each boot a controller
//! reset onto the new machine (its RAM, 16 MSI-X routes, INTx) with the
//! devices still on their ports; the HID devices handed to the console's
//! input router.
//!
//! The controller runs on the vCPU that rings its doorbell (as QEMU's).
//! The console's input is queued in the device on the VNC thread, which
//! then signals the controller's kick eventfd; the device event loop
//! answers the interrupt transfers the guest left pending (an MSI-X route
//! may change there, which the VNC threads' filters do not allow). Locks:
//! a device's queue, released; on the event loop the controller, then the
//! device (crates/usb's README).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use kvm_ioctls::VmFd;
use rvirt_machine::SystemAllocator;
use rvirt_pci::config::{command, reg};
use rvirt_pci::function::lock;
use rvirt_pci::intx::IntxPin;
use rvirt_pci::SharedFunction;
use rvirt_usb::device::SharedDevice;
use rvirt_usb::hid::{Hid, HidKind};
use rvirt_usb::xhci::{Xhci, XhciConfig, BAR, BAR_SIZE, MSIX_VECTORS};
use rvirt_vmm_config::{Chipset, PciAddr, PciBus, PortModel, UsbDeviceModel, VmConfig};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::event_loop::Subscriber;
use crate::interrupts::{GsiRouting, MsiRoutes};
use crate::VmmError;

fn lock_xhci(x: &Mutex<Xhci>) -> MutexGuard<'_, Xhci> {
    // A controller that panicked mid-access left its registers as they
    // were; serving them beats stopping the VM.
    x.lock().unwrap_or_else(|p| p.into_inner())
}

/// A controller as placed.
pub(super) struct XhciPlan {
    pub(super) xhci: Arc<Mutex<Xhci>>,
    pub(super) addr: PciAddr,
    pub(super) id: Option<String>,
    msi_gsis: Vec<u32>,
    /// Where firmware would put BAR 0.
    bar: u64,
    /// Signalled when a device on it has new input.
    kick: Arc<EventFd>,
}

/// A HID device and its controller's kick.
#[derive(Clone)]
pub(crate) struct UsbHid {
    pub(crate) hid: Arc<Mutex<Hid>>,
    kick: Arc<EventFd>,
}

impl UsbHid {
    /// Feeds the device (`f` queues the input), then kicks the controller
    /// to answer the transfer the guest left pending.
    pub(crate) fn feed(&self, f: impl FnOnce(&mut Hid)) {
        f(&mut self.hid.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(error) = self.kick.write(1) {
            tracing::warn!(%error, "usb: cannot signal the event loop");
        }
    }

    /// Whether the guest's driver runs (QEMU's handler activation).
    pub(crate) fn is_active(&self) -> bool {
        self.hid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_active()
    }

    pub(crate) fn kind(&self) -> HidKind {
        self.hid.lock().unwrap_or_else(|p| p.into_inner()).kind()
    }
}

/// The room a controller's BAR takes in a bridge's window.
pub(super) const BAR_ROOM: u64 = BAR_SIZE;

/// QEMU's device path of the function at `addr` (`qdev_get_dev_path`):
/// the domain and root bus, then slot.function of each bridge on the way
/// and of the function itself.
fn dev_path(cfg: &VmConfig, addr: PciAddr) -> String {
    let mut hops = vec![addr];
    let mut bus = addr.bus;
    while let PciBus::Port(i) = bus {
        let port = cfg.root_ports[i].addr;
        hops.push(port);
        bus = port.bus;
    }
    let mut path = "0000:00".to_string();
    for a in hops.iter().rev() {
        path.push_str(&format!(":{:02x}.{:x}", a.slot, a.function));
    }
    path
}

/// Builds the controllers and plugs their devices; places each
/// controller's MSI-X vectors and its BAR (at `bars[i]` inside a bridge's
/// window, or from the machine's window).
pub(super) fn plan(
    cfg: &VmConfig,
    alloc: &mut SystemAllocator,
    bars: &[Option<u64>],
) -> Result<(Vec<XhciPlan>, Vec<UsbHid>), VmmError> {
    let mut plans = Vec::new();
    for (c, bar) in cfg.usb_controllers.iter().zip(bars) {
        // On q35's root complex or right behind a root port the
        // function is PCI Express, as QEMU's (`pci_bus_is_express`).
        let express = match c.addr.bus {
            PciBus::Root => cfg.chipset == Chipset::Q35,
            PciBus::Port(i) => cfg.root_ports[i].model == PortModel::RootPort,
        };
        let xhci = Xhci::new(XhciConfig {
            p2: c.p2,
            p3: c.p3,
            express,
        });
        let msi_gsis = (0..MSIX_VECTORS)
            .map(|_| alloc.allocate_msi_gsi())
            .collect::<Result<Vec<_>, _>>()
            .map_err(VmmError::Placement)?;
        let bar = match bar {
            Some(b) => *b,
            None => {
                alloc
                    .allocate_mmio32(BAR_SIZE, BAR_SIZE)
                    .map_err(VmmError::Placement)?
                    .base
            }
        };
        let kick = EventFd::new(EFD_NONBLOCK).map_err(|source| VmmError::Setup {
            what: "the xHCI's eventfd",
            source,
        })?;
        plans.push(XhciPlan {
            xhci: Arc::new(Mutex::new(xhci)),
            addr: c.addr,
            id: c.id.clone(),
            msi_gsis,
            bar,
            kick: Arc::new(kick),
        });
    }
    let mut hids = Vec::new();
    for d in &cfg.usb_devices {
        let kind = match d.model {
            UsbDeviceModel::Tablet => HidKind::Tablet,
            UsbDeviceModel::Keyboard => HidKind::Keyboard,
            UsbDeviceModel::Mouse => HidKind::Mouse,
        };
        let mut hid = Hid::new(kind);
        let path = dev_path(cfg, cfg.usb_controllers[d.controller].addr);
        hid.set_location(Some(&path), d.port);
        let hid = Arc::new(Mutex::new(hid));
        let xhci = plans[d.controller].xhci.clone();
        let kick = plans[d.controller].kick.clone();
        let dev: SharedDevice = hid.clone();
        // The parser checked the port exists and is free.
        lock_xhci(&xhci)
            .plug(d.port, dev)
            .map_err(|e| VmmError::Setup {
                what: "a USB device's port",
                source: std::io::Error::other(e.to_string()),
            })?;
        hids.push(UsbHid { hid, kick });
    }
    Ok((plans, hids))
}

impl XhciPlan {
    /// This boot's function: the controller reset onto `memory`, its
    /// vectors routed, its pin; placed as firmware would when rvirt boots
    /// the kernel itself (`direct`).
    pub(super) fn attach(
        &self,
        vm: &VmFd,
        routing: Arc<GsiRouting>,
        memory: &rvirt_usb::Memory,
        intx: Arc<IntxPin>,
        direct: Option<u32>,
    ) -> std::io::Result<SharedFunction> {
        let msi = MsiRoutes::new(vm, routing, &self.msi_gsis)?;
        lock_xhci(&self.xhci).attach(memory.clone(), Arc::new(msi), intx);
        let f: SharedFunction = self.xhci.clone();
        if let Some(gsi) = direct {
            let mut g = lock(&f);
            let cfg = g.config_mut();
            cfg.set_bar_address(usize::from(BAR), self.bar);
            cfg.set_u16(reg::COMMAND, command::MEMORY | command::MASTER);
            cfg.set_u8(reg::INTERRUPT_LINE, gsi as u8);
        }
        Ok(f)
    }

    /// What serves its kick on the device event loop.
    pub(super) fn subscriber(&self) -> Box<dyn Subscriber> {
        Box::new(UsbSubscriber {
            xhci: self.xhci.clone(),
            kick: self.kick.clone(),
        })
    }
}

/// New input on a controller's devices: its pending interrupt transfers
/// answered.
struct UsbSubscriber {
    xhci: Arc<Mutex<Xhci>>,
    kick: Arc<EventFd>,
}

impl Subscriber for UsbSubscriber {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        vec![(self.kick.as_raw_fd(), 0)]
    }

    fn handle(&mut self, _token: u32) {
        // Nonblocking: EAGAIN means another wake already took it.
        let _ = self.kick.read();
        lock_xhci(&self.xhci).wake();
    }
}
