//! `--live` device attach and detach: PCI Express hot-plug of virtio
//! disks and NICs on a running q35 domain, as libvirt 9.0's QEMU driver
//! does it (qemu_hotplug.c).
//!
//! Attach: the device is put into a copy of the live definition (the
//! same checks as `--config`), given its alias and the address libvirt
//! would give it (an empty `pcie-root-port`: none free is libvirt's
//! error), and derived with the command line's own code
//! (`rvirt_domain::derive_disk`/`derive_nic`), so a hot-plugged device is
//! what it would have been at start. Its images are opened (and given to
//! the VM's user) as at start and passed with `add-fd`, its tap made and
//! passed with `getfd`; then `blockdev-add` per node or `netdev_add`, and
//! `device_add`. Any failure takes back what was done, in reverse.
//!
//! Detach: `device_del` (the guest is asked through the port's attention
//! button), then up to 5 s for the guest to let go (DEVICE_DELETED, which
//! the follower thread reports here); if it does, the back-end goes
//! (`blockdev-del`, `netdev_del`), the live definition loses the device,
//! its files go back to their owners and DEVICE_REMOVED is sent. If it
//! does not, the call still succeeds, as libvirt's, and the removal is
//! finished whenever the event comes.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rvirt_domain::pci::{Chipset, PciAddress};
use rvirt_domain::xml::{self, Element};
use rvirt_domain::{Domain, FdPlan};
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;
use serde_json::{json, Value};

use super::registry::Running;
use super::runtime::HotplugRecord;
use super::DomainDriver;

/// How long a detach waits for the guest, as libvirt's
/// `qemuDomainWaitForDeviceRemoval`.
const UNPLUG_WAIT: Duration = Duration::from_secs(5);

/// What a running VM has hot-plugged, and the guest's answers to
/// `device_del` not yet acted on.
#[derive(Default)]
pub struct HotplugState {
    inner: Mutex<Inner>,
    deleted_cv: Condvar,
}

#[derive(Default)]
struct Inner {
    /// Block nodes of hot-plugged disks, by alias, top first (kept in
    /// the runtime record: [`HotplugState::record`]).
    nodes: BTreeMap<String, Vec<String>>,
    /// The next `libvirt-N-…` number no node has (0: ask `query-block`).
    next_node: u64,
    /// Aliases the VMM reported DEVICE_DELETED for.
    deleted: Vec<String>,
}

impl HotplugState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The VMM reported DEVICE_DELETED of `alias`.
    pub fn deleted(&self, alias: &str) {
        self.lock().deleted.push(alias.to_string());
        self.deleted_cv.notify_all();
    }

    /// Takes `alias` from the reported ones, waiting up to `timeout`.
    fn take_deleted(&self, alias: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(i) = g.deleted.iter().position(|a| a == alias) {
                g.deleted.remove(i);
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .deleted_cv
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// What the runtime record keeps: the nodes and the next number.
    pub fn record(&self) -> HotplugRecord {
        let g = self.lock();
        HotplugRecord {
            nodes: g.nodes.clone(),
            next_node: g.next_node,
        }
    }

    /// Takes back what a previous daemon recorded, for an adopted VM.
    pub fn restore(&self, r: HotplugRecord) {
        let mut g = self.lock();
        g.nodes = r.nodes;
        g.next_node = r.next_node;
    }

    /// The next free block node number, at least `seen` (what
    /// `query-block` shows).
    pub fn next_node(&self, seen: u64) -> u64 {
        self.lock().next_node.max(seen)
    }
}

fn unsupported_live(verb: &str, kind: &str) -> RemoteError {
    RemoteError::new(
        code::OPERATION_UNSUPPORTED,
        from::QEMU,
        Some(&format!("live {verb} of device '{kind}' is not supported")),
    )
}

/// libvirt's wording for a monitor command that failed.
fn qemu_failed(command: &str, e: &rvirt_qmp::ClientError) -> RemoteError {
    let why = match e {
        rvirt_qmp::ClientError::Command { error, .. } => error.desc.clone(),
        other => crate::error_chain(other),
    };
    RemoteError::internal(&format!(
        "unable to execute QEMU command '{command}': {why}"
    ))
}

fn kind_of(dev: &Element) -> &str {
    AsRef::<str>::as_ref(&dev.name)
}

/// The `-opt value` pairs of a derivation.
fn pairs(args: &[String]) -> impl Iterator<Item = (&str, &str)> {
    args.chunks(2).filter_map(|c| match c {
        [k, v] => Some((k.as_str(), v.as_str())),
        _ => None,
    })
}

fn json_arg(s: &str) -> Result<Value, RemoteError> {
    serde_json::from_str(s)
        .map_err(|e| RemoteError::internal(&format!("derived device is not JSON: {e}")))
}

/// Undo steps of an attach, run in reverse on failure.
#[derive(Default)]
struct Undo {
    nodes: Vec<String>,
    fdsets: Vec<i64>,
    netdev: Option<String>,
    fdname: Option<String>,
    labelled: Vec<PathBuf>,
}

impl Undo {
    fn run(self, qmp: &rvirt_qmp::QmpClient) {
        if let Some(n) = &self.netdev {
            let _ = qmp.execute("netdev_del", Some(json!({ "id": n })));
        }
        if let Some(f) = &self.fdname {
            let _ = qmp.execute("closefd", Some(json!({ "fdname": f })));
        }
        for n in self.nodes.iter().rev() {
            let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": n })));
        }
        self.forget_fdsets(qmp);
        for p in &self.labelled {
            super::dac::restore(p);
        }
    }

    fn forget_fdsets(&self, qmp: &rvirt_qmp::QmpClient) {
        for s in &self.fdsets {
            let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": s })));
        }
    }
}

/// Whether a device of `dev`'s kind can be plugged into (or taken out of)
/// running `live`: a disk or an interface on q35 (native PCI Express
/// hot-plug; pc's ACPI hot-plug and microvm have none).
pub fn can_plug(live: &Domain, dev: &Element) -> bool {
    matches!(kind_of(dev), "disk" | "interface") && Chipset::of(live) == Some(Chipset::Q35)
}

/// The PCI address element `dev` gives, if any.
fn given_address(dev: &Element) -> Option<&Element> {
    dev.child("address")
}

impl DomainDriver {
    /// The live half of attach-device: hot-plugs `dev` into running
    /// `name`.
    pub(super) fn attach_live(
        &self,
        name: &str,
        run: &Arc<Running>,
        dev: &Element,
    ) -> Result<(), RemoteError> {
        let kind = kind_of(dev).to_string();
        let live = run.live();
        if !matches!(kind.as_str(), "disk" | "interface") {
            return Err(unsupported_live("attach", &kind));
        }
        // Native PCI Express hot-plug only: pc (ACPI hot-plug) and
        // microvm (no PCI) are refused as libvirt refuses what its QEMU
        // cannot do.
        if Chipset::of(&live) != Some(Chipset::Q35) {
            return Err(unsupported_live("attach", &kind));
        }
        // The device checked as `--config` checks it, in the live
        // definition.
        let mut root = xml::parse(&live.to_xml())
            .map_err(|e| RemoteError::internal(&format!("live definition unreadable: {e}")))?;
        super::edit::apply(&mut root, super::edit::DeviceEdit::Attach, dev.clone())?;
        let mut text = String::new();
        xml::write(&mut text, &root, 0);
        let mut next =
            Domain::from_xml(&text).map_err(|e| RemoteError::xml_error(&e.to_string()))?;
        match kind.as_str() {
            "disk" => self.attach_disk(name, run, &live, next, dev),
            _ => {
                let i = next.devices.interfaces.len() - 1;
                if next.devices.interfaces[i].mac.is_none() {
                    next.devices.interfaces[i].mac = Some(new_mac(&next));
                }
                self.attach_nic(name, run, &live, next, dev)
            }
        }
    }

    fn attach_disk(
        &self,
        name: &str,
        run: &Arc<Running>,
        live: &Domain,
        mut next: Domain,
        dev: &Element,
    ) -> Result<(), RemoteError> {
        let i = next.devices.disks.len() - 1;
        {
            let d = &next.devices.disks[i];
            if d.bus() != "virtio" || d.device != "disk" {
                return Err(unsupported_live("attach", "disk"));
            }
        }
        let addr = rvirt_domain::pci::hotplug_address(live, given_address(dev), false)
            .map_err(|e| RemoteError::internal(&e))?;
        {
            let d = &mut next.devices.disks[i];
            d.info.address = Some(addr.element());
            d.info.alias = Some(rvirt_domain::names::disk_alias(d));
        }
        // A confined VMM opens nothing by name: the chain is read from
        // the headers as at start.
        if run.held.label.is_some() {
            if let Some(filled) = super::confine::fill_chains(&next)? {
                next = filled;
            }
        }
        let d = next.devices.disks[i].clone();
        let alias = d.info.alias.clone().unwrap_or_default();
        let qmp = &run.qmp;
        let mut undo = Undo::default();
        let result = (|| -> Result<Vec<String>, RemoteError> {
            // The images, opened and passed as at start (confined VMMs).
            let mut plan = FdPlan::default();
            if let Some(label) = run.held.label {
                let failed = |e: &dyn std::error::Error| {
                    RemoteError::operation_failed(&crate::error_chain(e))
                };
                let src = d.source_path().unwrap_or_default().to_string();
                let mut files: Vec<(String, String, bool)> =
                    vec![(d.target_dev.clone(), src.clone(), d.readonly)];
                for (k, below) in rvirt_domain::backing_paths(&d).iter().enumerate() {
                    files.push((
                        rvirt_domain::backing_key(&d.target_dev, k + 1),
                        below.clone(),
                        true,
                    ));
                }
                if !d.readonly {
                    undo.labelled.push(
                        super::dac::set(Path::new(&src), label, !d.shareable)
                            .map_err(|e| failed(&e))?,
                    );
                }
                for (what, path, ro) in files {
                    let f = super::confine::open_disk(Path::new(&path), &d, ro).map_err(|e| {
                        RemoteError::operation_failed(&format!("cannot open {path}: {e}"))
                    })?;
                    let fd = OwnedFd::from(f);
                    let added = qmp
                        .execute_with_fd(
                            "add-fd",
                            Some(json!({ "opaque": format!("{alias}-{what}") })),
                            fd.as_fd(),
                        )
                        .map_err(|e| qemu_failed("add-fd", &e))?;
                    let set = added["fdset-id"].as_i64().unwrap_or(-1);
                    undo.fdsets.push(set);
                    plan.fdsets.insert(what, set as u32);
                }
            }
            let (_, seen) = super::snapshot::top_nodes(run)?;
            // libvirt numbers nodes from 1.
            let first = run.hotplug.next_node(seen).max(1);
            let argv = rvirt_domain::derive_disk(
                &next,
                i,
                first as usize,
                &plan,
                &self.tree.vmm_paths(name),
            )
            .map_err(|e| {
                RemoteError::new(code::CONFIG_UNSUPPORTED, from::QEMU, Some(&e.to_string()))
            })?;
            let mut device = None;
            let mut nodes = Vec::new();
            for (k, v) in pairs(&argv.args) {
                match k {
                    "-blockdev" => {
                        let node = json_arg(v)?;
                        let n = node["node-name"].as_str().unwrap_or_default().to_string();
                        qmp.execute("blockdev-add", Some(node))
                            .map_err(|e| qemu_failed("blockdev-add", &e))?;
                        undo.nodes.push(n.clone());
                        nodes.push(n);
                    }
                    "-device" => device = Some(json_arg(v)?),
                    _ => {}
                }
            }
            let max = nodes
                .iter()
                .filter_map(|n| {
                    n.strip_prefix("libvirt-")?
                        .split('-')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(first);
            run.hotplug.lock().next_node = max + 1;
            let device = device.ok_or_else(|| RemoteError::internal("no device derived"))?;
            qmp.execute("device_add", Some(device))
                .map_err(|e| qemu_failed("device_add", &e))?;
            Ok(nodes)
        })();
        let nodes = match result {
            Ok(n) => n,
            Err(e) => {
                undo.run(qmp);
                return Err(e);
            }
        };
        // The nodes hold their own copies of the descriptors now.
        undo.forget_fdsets(qmp);
        run.label_later(undo.labelled);
        // Deleted top first.
        let mut nodes = nodes;
        nodes.reverse();
        run.hotplug.lock().nodes.insert(alias.clone(), nodes);
        let mut updated = live.clone();
        // As at start, the live XML shows the chain read from the headers.
        updated.devices.disks.push(d.clone());
        run.set_live(updated);
        self.save_record(name, run);
        tracing::info!(domain = name, alias, "disk hot-plugged");
        Ok(())
    }

    fn attach_nic(
        &self,
        name: &str,
        run: &Arc<Running>,
        live: &Domain,
        mut next: Domain,
        dev: &Element,
    ) -> Result<(), RemoteError> {
        let i = next.devices.interfaces.len() - 1;
        let iface = &next.devices.interfaces[i];
        if iface.model.as_deref() != Some("virtio")
            || !matches!(iface.iface_type.as_str(), "network" | "bridge" | "ethernet")
        {
            return Err(unsupported_live("attach", "interface"));
        }
        let addr = rvirt_domain::pci::hotplug_address(live, given_address(dev), false)
            .map_err(|e| RemoteError::internal(&e))?;
        // libvirt's alias at hot-plug: one past the highest netN.
        let n = live
            .devices
            .interfaces
            .iter()
            .filter_map(|x| {
                x.info
                    .alias
                    .as_deref()?
                    .strip_prefix("net")?
                    .parse::<usize>()
                    .ok()
            })
            .map(|k| k + 1)
            .max()
            .unwrap_or(0);
        {
            let x = &mut next.devices.interfaces[i];
            x.info.address = Some(addr.element());
            x.info.alias = Some(format!("net{n}"));
        }
        let paths = self.tree.vmm_paths(name);
        let derive = |plan: &FdPlan| {
            rvirt_domain::derive_nic(&next, i, n, plan, &paths).map_err(|e| {
                RemoteError::new(code::CONFIG_UNSUPPORTED, from::QEMU, Some(&e.to_string()))
            })
        };
        let plain = derive(&FdPlan::default())?;
        // The tap, made as at start (its MAC, bridge, MTU, up).
        let tap = super::nics::open_at(&next, i, &plain.taps, &*self.networks)
            .map_err(|e| e.to_remote())?;
        let netdev = format!("hostnet{n}");
        let fdname = format!("{netdev}-tapfd");
        let (fd, named) = tap.into_parts();
        let qmp = &run.qmp;
        let mut undo = Undo::default();
        let result = (|| -> Result<(), RemoteError> {
            qmp.execute_with_fd("getfd", Some(json!({ "fdname": fdname })), fd.as_fd())
                .map_err(|e| qemu_failed("getfd", &e))?;
            undo.fdname = Some(fdname.clone());
            let mut plan = FdPlan::default();
            plan.taps.insert(netdev.clone(), 0);
            let argv = derive(&plan)?;
            let device = pairs(&argv.args)
                .find(|(k, _)| *k == "-device")
                .map(|(_, v)| json_arg(v))
                .transpose()?
                .ok_or_else(|| RemoteError::internal("no device derived"))?;
            qmp.execute(
                "netdev_add",
                Some(json!({ "type": "tap", "fd": fdname, "id": netdev })),
            )
            .map_err(|e| qemu_failed("netdev_add", &e))?;
            undo.fdname = None;
            undo.netdev = Some(netdev.clone());
            qmp.execute("device_add", Some(device))
                .map_err(|e| qemu_failed("device_add", &e))?;
            Ok(())
        })();
        // The VMM holds its own copy (or none, on failure): closing ours
        // leaves it the only holder of the non-persistent tap.
        drop(fd);
        if let Err(e) = result {
            undo.run(qmp);
            return Err(e);
        }
        let mut updated = live.clone();
        updated
            .devices
            .interfaces
            .push(next.devices.interfaces[i].clone());
        let k = updated.devices.interfaces.len() - 1;
        super::nics::annotate(
            &mut updated,
            &[super::nics::NamedTap {
                iface: Some(k),
                ..named
            }],
        );
        run.set_live(updated);
        self.save_record(name, run);
        tracing::info!(domain = name, netdev, "NIC hot-plugged");
        Ok(())
    }

    /// The live half of detach-device: asks the guest to let go of the
    /// device `dev` names and, if it does within 5 s, removes it.
    pub(super) fn detach_live(
        &self,
        name: &str,
        run: &Arc<Running>,
        dev: &Element,
    ) -> Result<(), RemoteError> {
        let kind = kind_of(dev).to_string();
        let live = run.live();
        if !matches!(kind.as_str(), "disk" | "interface")
            || Chipset::of(&live) != Some(Chipset::Q35)
        {
            return Err(unsupported_live("detach", &kind));
        }
        let mut root = xml::parse(&live.to_xml())
            .map_err(|e| RemoteError::internal(&format!("live definition unreadable: {e}")))?;
        let alias = super::edit::alias_of(&mut root, dev)?;
        let on_port =
            |a: Option<&Element>| a.and_then(PciAddress::read).is_some_and(|a| a.bus != 0);
        let hotpluggable = match kind.as_str() {
            "disk" => live.devices.disks.iter().any(|d| {
                d.info.alias.as_deref() == Some(&alias)
                    && d.bus() == "virtio"
                    && on_port(d.info.address.as_ref())
            }),
            _ => live.devices.interfaces.iter().any(|x| {
                x.info.alias.as_deref() == Some(&alias) && on_port(x.info.address.as_ref())
            }),
        };
        if !hotpluggable {
            return Err(unsupported_live("detach", &kind));
        }
        // A start-time disk's nodes, while query-block still lists them.
        if kind == "disk" {
            let mut h = run.hotplug.lock();
            if !h.nodes.contains_key(&alias) {
                drop(h);
                let nodes = start_nodes(run, &live, &alias)?;
                h = run.hotplug.lock();
                h.nodes.insert(alias.clone(), nodes);
            }
        }
        run.qmp
            .execute("device_del", Some(json!({ "id": alias })))
            .map_err(|e| qemu_failed("device_del", &e))?;
        if run.hotplug.take_deleted(&alias, UNPLUG_WAIT) {
            self.finish_removal(name, run, &alias);
        } else {
            tracing::info!(
                domain = name,
                alias,
                "detach requested; the guest has not answered"
            );
        }
        Ok(())
    }

    /// The follower saw DEVICE_DELETED of `alias`: unless a detach that
    /// waits for it takes it, the removal is finished under the job lock.
    pub fn on_device_deleted(&self, name: &str, run: &Arc<Running>, alias: &str) {
        run.hotplug.deleted(alias);
        let me = self.arc();
        let (name, run, alias) = (name.to_string(), run.clone(), alias.to_string());
        let spawned = std::thread::Builder::new()
            .name("device-removed".into())
            .spawn(move || {
                let Ok(job) = me.reg().by_name(&name).map(|e| e.job.clone()) else {
                    return;
                };
                let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
                if run.hotplug.take_deleted(&alias, Duration::ZERO) {
                    me.finish_removal(&name, &run, &alias);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a device removal thread");
        }
    }

    /// The guest let go of `alias`: its back-end goes, the live definition
    /// loses it, its files go back to their owners, DEVICE_REMOVED.
    /// The caller holds the job lock.
    fn finish_removal(&self, name: &str, run: &Arc<Running>, alias: &str) {
        let qmp = &run.qmp;
        let mut live = (*run.live()).clone();
        if let Some(i) = live
            .devices
            .disks
            .iter()
            .position(|d| d.info.alias.as_deref() == Some(alias))
        {
            let nodes = run.hotplug.lock().nodes.remove(alias).unwrap_or_default();
            // Format nodes before the files below them.
            for n in &nodes {
                if let Err(e) = qmp.execute("blockdev-del", Some(json!({ "node-name": n }))) {
                    tracing::warn!(domain = name, node = n, error = %e, "blockdev-del failed");
                }
            }
            let d = live.devices.disks.remove(i);
            if let Some(p) = d.source_path() {
                run.unlabel(Path::new(p));
            }
        } else if let Some(i) = live
            .devices
            .interfaces
            .iter()
            .position(|x| x.info.alias.as_deref() == Some(alias))
        {
            let n = alias.strip_prefix("net").unwrap_or(alias);
            let netdev = format!("hostnet{n}");
            if let Err(e) = qmp.execute("netdev_del", Some(json!({ "id": netdev }))) {
                tracing::warn!(domain = name, netdev, error = %e, "netdev_del failed");
            }
            live.devices.interfaces.remove(i);
        } else {
            return;
        }
        run.set_live(live);
        self.save_record(name, run);
        tracing::info!(domain = name, alias, "device removed");
        let handle = self.reg().by_name(name).ok().map(|e| e.handle());
        if let Some(h) = handle {
            self.events.device_removed(&h, alias);
        }
    }
}

/// The block nodes of start-time disk `alias`, top format node first:
/// libvirt's numbering (`libvirt-N-format` over `libvirt-N-storage`,
/// each image below one number lower).
fn start_nodes(run: &Running, live: &Domain, alias: &str) -> Result<Vec<String>, RemoteError> {
    let (top, _) = super::snapshot::top_nodes(run)?;
    let Some(d) = live
        .devices
        .disks
        .iter()
        .find(|d| d.info.alias.as_deref() == Some(alias))
    else {
        return Ok(Vec::new());
    };
    let Some(n) = top.get(&d.target_dev).and_then(|node| {
        node.strip_prefix("libvirt-")?
            .strip_suffix("-format")?
            .parse::<u64>()
            .ok()
    }) else {
        return Ok(Vec::new());
    };
    let below = rvirt_domain::backing_paths(d).len() as u64;
    let mut nodes = Vec::new();
    for k in 0..=below.min(n) {
        nodes.push(format!("libvirt-{}-format", n - k));
        nodes.push(format!("libvirt-{}-storage", n - k));
    }
    Ok(nodes)
}

/// A MAC with QEMU's prefix that no other NIC of `d` has.
fn new_mac(d: &Domain) -> rvirt_domain::mac::Mac {
    use rvirt_domain::Random;
    let mut rng = rvirt_domain::OsRandom;
    loop {
        let b = rng.bytes16();
        let mac = rvirt_domain::mac::Mac::with_qemu_prefix([b[0], b[1], b[2]]);
        if !d.devices.interfaces.iter().any(|i| i.mac == Some(mac)) {
            return mac;
        }
    }
}
