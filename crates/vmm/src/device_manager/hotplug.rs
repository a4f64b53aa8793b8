//! Hot-plug on q35: `netdev_add`/`netdev_del` (the back-ends a NIC will
//! name), `device_add` of a virtio-net-pci (on a netdev) or a
//! virtio-blk-pci (on a format node `blockdev-add` made) into an empty hot-plug
//! capable `pcie-root-port`, and `device_del`, which presses the port's attention
//! button; the device leaves when the guest powers the slot off
//! ([`DeviceManager::unplugged`], then DEVICE_DELETED), as on QEMU. A guest
//! that never answers keeps the device.
//!
//! A hot-plugged device joins the device manager's lists as if it had been
//! on the command line (the configuration, the PCI plan, the virtio
//! devices), so every later boot has it, as QEMU keeps it across a reset;
//! one that leaves is taken out of them, its GSIs given back.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rvirt_qmp::{Event as QmpEvent, QmpError};
use rvirt_vmm_config::{
    DeviceAddr, Netdev, PciBus, StreamAddr, StreamNetdev, TapSource, VirtioConfig,
};
use serde_json::{Map, Value};

use super::{DeviceManager, Place, VirtioSlot, Wiring};
use crate::block_nodes::{BlockNodes, User};
use crate::event_loop::EventLoop;

/// A back-end `netdev_add` made.
pub(crate) struct AddedNetdev {
    id: String,
    netdev: Netdev,
    /// The tap's descriptor (`fd` named one `getfd` passed).
    fd: Option<OwnedFd>,
    /// Its device left the machine: the back-end stays until `netdev_del`
    /// (as QEMU's), but no device can use it again (its tap went with the
    /// device).
    defunct: bool,
}

/// How long an unplug request is pending for a repeated `device_del`.
const UNPLUG_PENDING: std::time::Duration = std::time::Duration::from_secs(5);

/// QEMU's `DEVICE_DELETED` paths for a device with id `id`.
fn peripheral(id: &str) -> String {
    format!("/machine/peripheral/{id}")
}

impl DeviceManager {
    /// Every netdev id the VM has: the command line's, and those added.
    fn netdev_in_use(&self, id: &str) -> Option<String> {
        self.config.virtio.iter().find_map(|v| match v {
            VirtioConfig::Net(n) if n.netdev == id => {
                Some(n.id.clone().unwrap_or_else(|| "a NIC".into()))
            }
            _ => None,
        })
    }

    /// `netdev_add`: a tap (its descriptor from `getfd`) or a stream.
    pub(crate) fn netdev_add(&mut self, json: &str, fd: Option<OwnedFd>) -> Result<(), QmpError> {
        let mut args: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| QmpError::generic(e.to_string()))?;
        if let Some(fd) = &fd {
            // The parser reads the descriptor as a number: ours, here.
            let n = Value::String(fd.as_raw_fd().to_string());
            if args.contains_key("fd") {
                args.insert("fd".into(), n);
            } else if let Some(addr) = args.get_mut("addr").and_then(Value::as_object_mut) {
                addr.insert("str".into(), n);
            }
        }
        let (id, netdev) = rvirt_vmm_config::parse_netdev(&Value::Object(args).to_string())
            .map_err(|e| QmpError::generic(e.message))?;
        match &netdev {
            Netdev::Tap(TapSource::Fd(_)) | Netdev::Stream(StreamNetdev { addr: StreamAddr::Fd(_), .. })
                if fd.is_none() =>
            {
                return Err(QmpError::generic(
                    "netdev_add: the descriptor must be one passed with getfd",
                ))
            }
            // Under the sandbox the VMM opens no socket once the VM runs.
            Netdev::Stream(StreamNetdev { addr: StreamAddr::Unix(path), .. })
                if crate::sandbox::is_installed() =>
            {
                return Err(QmpError::generic(format!(
                    "netdev_add: a sandboxed VMM connects no socket ('{}'): pass a connected one with getfd and addr.type=fd",
                    path.display()
                )))
            }
            Netdev::Tap(TapSource::Name(_)) => {
                return Err(QmpError::generic(
                    "netdev_add: a running VMM opens no tap by name; pass it with getfd and fd=",
                ))
            }
            Netdev::User(_) => {
                return Err(QmpError::generic(
                    "netdev_add: type 'user' cannot be added while the VM runs",
                ))
            }
            _ => {}
        }
        if self.netdev_in_use(&id).is_some() || self.netdevs.iter().any(|n| n.id == id) {
            return Err(QmpError::generic(format!("Duplicate ID '{id}' for netdev")));
        }
        self.netdevs.push(AddedNetdev {
            id,
            netdev,
            fd,
            defunct: false,
        });
        Ok(())
    }

    /// `netdev_del`.
    pub(crate) fn netdev_del(&mut self, id: &str) -> Result<(), QmpError> {
        if let Some(i) = self.netdevs.iter().position(|n| n.id == id) {
            self.netdevs.remove(i);
            return Ok(());
        }
        if let Some(dev) = self.netdev_in_use(id) {
            return Err(QmpError::generic(format!(
                "netdev '{id}' is in use by device '{dev}': device_del it first"
            )));
        }
        Err(QmpError::device_not_found(id))
    }

    /// `device_add` of a virtio-net-pci into an empty hot-plug capable root
    /// port of this boot's machine (`wiring`, `event_loop`).
    pub(crate) fn device_add(
        &mut self,
        json: &str,
        wiring: &Wiring,
        event_loop: &EventLoop,
        nodes: &mut BlockNodes,
    ) -> Result<(), QmpError> {
        let (Some(plan), Some(live)) = (&self.pci, &wiring.pci) else {
            return Err(QmpError::generic(
                "Bus 'main-system-bus' does not support hotplugging",
            ));
        };
        let free: Vec<(String, Netdev)> = self
            .netdevs
            .iter()
            .filter(|n| !n.defunct)
            .map(|n| (n.id.clone(), n.netdev.clone()))
            .collect();
        // A disk's drive: a format node `blockdev-add` made that nothing
        // uses yet.
        let drive = serde_json::from_str::<Value>(json)
            .ok()
            .and_then(|v| v.get("drive").and_then(Value::as_str).map(str::to_string));
        let free_nodes: Vec<_> = drive
            .iter()
            .filter(|d| nodes.user(d).is_none())
            .filter_map(|d| Some((d.clone(), nodes.format_node(d)?.clone())))
            .collect();
        let hot = rvirt_vmm_config::parse_device_add(
            json,
            self.config.chipset,
            &self.config.root_ports,
            free,
            free_nodes,
        )
        .map_err(|e| QmpError::generic(e.message))?;
        // QEMU takes a device without an id too; rvirt names the device
        // to unplug by its id only, so it asks for one.
        let Some(id) = hot.device.id().map(str::to_string) else {
            return Err(QmpError::generic(
                "device_add: give the device an id (device_del names it)",
            ));
        };
        let taken = self.config.virtio.iter().any(|v| v.id() == Some(&id))
            || self.config.root_ports.iter().any(|p| p.id == id);
        if taken {
            return Err(QmpError::generic(format!("Duplicate ID '{id}' for device")));
        }
        let PciBus::Port(port) = hot.addr.bus else {
            return Err(QmpError::generic("only a root port's slot hot-plugs"));
        };
        if !plan.port_hotplugs(port) {
            return Err(QmpError::generic(format!(
                "Bus '{}' does not support hotplugging",
                self.config.root_ports[port].id
            )));
        }
        if let Some(other) = plan.occupant(port) {
            return Err(QmpError::generic(format!(
                "PCI: slot 0 function 0 not available for {}, in use by {}",
                hot.driver,
                other.id.as_deref().unwrap_or("a device")
            )));
        }
        let mut device = hot.device;
        // A descriptor passed with getfd: the device takes a duplicate,
        // so a failure leaves the netdev as it was.
        let mut netdev_index = None;
        if let VirtioConfig::Net(n) = &mut device {
            let i = self.netdevs.iter().position(|a| a.id == n.netdev);
            netdev_index = i;
            if let Some(fd) = i.and_then(|i| self.netdevs[i].fd.as_ref()) {
                let dup = fd
                    .try_clone()
                    .map_err(|e| QmpError::generic(format!("cannot use the netdev: {e}")))?
                    .into_raw_fd();
                match &mut n.backend {
                    Netdev::Tap(source) => *source = TapSource::Fd(dup),
                    Netdev::Stream(s) => s.addr = StreamAddr::Fd(dup),
                    Netdev::User(_) => {}
                }
            }
        }
        let index = self.virtio.len();
        let built = super::virtio::build(index, &device, &self.config, &self.bus)
            .map_err(|(_, e)| QmpError::generic(crate::error_chain(&e)))?;
        let vectors = rvirt_virtio::transport::pci::vectors_for(
            &*built.device.lock().unwrap_or_else(|p| p.into_inner()),
        );
        let Some(alloc) = self.alloc.as_mut() else {
            return Err(QmpError::generic("no allocator for hot-plug"));
        };
        let mut gsis = Vec::new();
        for _ in 0..vectors {
            match alloc.allocate_msi_gsi() {
                Ok(g) => gsis.push(g),
                Err(e) => {
                    for g in gsis {
                        let _ = alloc.free_msi_gsi(g);
                    }
                    return Err(QmpError::generic(format!("no GSI for the device: {e}")));
                }
            }
        }
        let slot = VirtioSlot {
            device: built.device,
            retired: Arc::new(AtomicBool::new(false)),
            place: Place::Pci,
            option: built.option,
            boot: Vec::new(),
        };
        let Some(plan) = self.pci.as_mut() else {
            return Err(QmpError::generic("no PCI"));
        };
        plan.add_hotplugged(index, hot.addr, Some(id.clone()), gsis);
        let plugged = match plan.find(&id) {
            Some(fplan) => live.plug(plan, fplan, &slot, event_loop),
            None => Err("the device was not placed".into()),
        };
        if let Err(e) = plugged {
            if let Some(gone) = plan.remove(index) {
                if let Some(alloc) = self.alloc.as_mut() {
                    for g in gone.msi_gsis {
                        let _ = alloc.free_msi_gsi(g);
                    }
                }
            }
            return Err(QmpError::generic(e));
        }
        if let Some(i) = netdev_index {
            // The device owns its tap now; the netdev's id stays taken.
            self.netdevs.remove(i);
        }
        if let VirtioConfig::Blk(d) = &device {
            if d.blockdev {
                if let Err(e) = nodes.attach(&d.drive, User::Device(id.clone())) {
                    tracing::warn!(drive = %d.drive, "hot-plugged disk's node: {}", e.desc);
                }
            }
        }
        self.nics.extend(built.nic);
        self.disks.extend(built.disks);
        self.virtio.push(slot);
        self.config.virtio.push(device);
        self.config
            .virtio_addrs
            .push(DeviceAddr::Pci { addr: hot.addr });
        tracing::info!(%id, "device hot-plugged");
        Ok(())
    }

    /// `device_del`: the attention button of the device's slot is pressed.
    pub(crate) fn device_del(&mut self, id: &str, wiring: &Wiring) -> Result<(), QmpError> {
        let id = id.strip_prefix("/machine/peripheral/").unwrap_or(id);
        let Some(plan) = &self.pci else {
            return Err(QmpError::device_not_found(id));
        };
        let Some(f) = plan.find(id) else {
            if self.config.virtio.iter().any(|v| v.id() == Some(id))
                || self.config.root_ports.iter().any(|p| p.id == id)
            {
                let bus = self.config.chipset.root_bus().unwrap_or("main-system-bus");
                return Err(QmpError::generic(format!(
                    "Bus '{bus}' does not support hotplugging"
                )));
            }
            return Err(QmpError::device_not_found(id));
        };
        let port = match f.addr.bus {
            PciBus::Port(p) if plan.port_hotplugs(p) => p,
            PciBus::Port(p) => {
                return Err(QmpError::generic(format!(
                    "Bus '{}' does not support hotplugging",
                    self.config.root_ports[p].id
                )))
            }
            PciBus::Root => {
                let bus = self.config.chipset.root_bus().unwrap_or_default();
                return Err(QmpError::generic(format!(
                    "Bus '{bus}' does not support hotplugging"
                )));
            }
        };
        // As QEMU 7.2: a request repeated within 5 s is refused (a second
        // press of the button would cancel the first in the guest); later
        // the button is pressed again.
        let now = std::time::Instant::now();
        self.unplugging
            .retain(|(_, at)| now.duration_since(*at) < UNPLUG_PENDING);
        if self.unplugging.iter().any(|(u, _)| u == id) {
            return Err(QmpError::generic(format!(
                "Device {id} is already in the process of unplug"
            )));
        }
        let pressed = wiring.pci.as_ref().is_some_and(|w| w.press_button(port));
        if !pressed {
            return Err(QmpError::generic(
                "the device's slot is not on this machine",
            ));
        }
        self.unplugging.push((id.to_string(), now));
        Ok(())
    }

    /// The guest let the function `function` (device `id`) go: what is
    /// left of it is released, it leaves the lists, and the events QEMU
    /// sends follow (the virtio back-end's, then the device's). A device
    /// from the command line goes the same way (QEMU's root ports take
    /// those out too).
    pub(crate) fn unplugged(
        &mut self,
        function: rvirt_pci::FunctionId,
        id: Option<String>,
        wiring: &Wiring,
        event_loop: &EventLoop,
        nodes: &mut BlockNodes,
    ) -> Vec<QmpEvent> {
        let Some(flag) = wiring.pci.as_ref().and_then(|w| w.released(function)) else {
            return Vec::new();
        };
        // The event loop drops the retired subscriber at this wakeup.
        event_loop.wake();
        if let Some(id) = &id {
            self.unplugging.retain(|(u, _)| u != id);
        }
        let Some(i) = self
            .virtio
            .iter()
            .position(|s| Arc::ptr_eq(&s.retired, &flag))
        else {
            return Vec::new();
        };
        self.virtio.remove(i);
        if let Some(gone) = self.pci.as_mut().and_then(|p| p.remove(i)) {
            if let Some(alloc) = self.alloc.as_mut() {
                for g in &gone.msi_gsis {
                    let _ = alloc.free_msi_gsi(*g);
                }
            }
        }
        if i < self.config.virtio.len() {
            let dev = self.config.virtio.remove(i);
            self.config.virtio_addrs.remove(i);
            match dev {
                VirtioConfig::Net(n) => {
                    self.nics.retain(|c| !c.is_named(&n.netdev));
                    self.netdevs.push(AddedNetdev {
                        id: n.netdev,
                        netdev: n.backend,
                        fd: None,
                        defunct: true,
                    });
                }
                // The node stays for blockdev-del, free again (as QEMU's).
                VirtioConfig::Blk(d) => {
                    nodes.detach(&d.drive);
                    let qdev = d.id.clone().or(Some(d.drive.clone()));
                    self.disks.retain(|m| m.qdev() != qdev);
                }
                _ => {}
            }
        }
        tracing::info!(id = id.as_deref().unwrap_or(""), "device unplugged");
        let Some(id) = id else {
            return Vec::new();
        };
        let path = peripheral(&id);
        vec![
            QmpEvent::DeviceDeleted {
                device: None,
                path: format!("{path}/virtio-backend"),
            },
            QmpEvent::DeviceDeleted {
                device: Some(id),
                path,
            },
        ]
    }
}
