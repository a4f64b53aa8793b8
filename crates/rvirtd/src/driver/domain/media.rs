//! Removable media of a running domain (`virsh change-media`, `virsh
//! update-device --live` of a CD-ROM's `<source>`), as libvirt 9.0's
//! `qemuDomainChangeMediaBlockdev` changes them over QMP: the tray opened
//! (`blockdev-open-tray`, waited for until the VMM reports it open),
//! the medium removed (`blockdev-remove-medium`), the new image passed
//! open (`add-fd`, given to the VM's user first when the domain is
//! confined), added as nodes (`blockdev-add`) and inserted
//! (`blockdev-insert-medium`), the tray closed (`blockdev-close-tray`);
//! then the old nodes deleted and the old image given back. The VMM's
//! DEVICE_TRAY_MOVED becomes libvirt's TRAY_CHANGE event
//! (`DomainDriver::on_tray_moved`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rvirt_domain::model::Disk;
use rvirt_domain::xml::Element;
use rvirt_remote::consts::{VIR_DOMAIN_EVENT_TRAY_CHANGE_CLOSE, VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN};
use rvirt_remote::error::{code, from};
use rvirt_remote::RemoteError;
use serde_json::json;

use super::registry::Running;
use super::DomainDriver;

/// How long the guest has to let the tray open (libvirt's
/// CHANGE_MEDIA_TIMEOUT).
const TRAY_TIMEOUT: Duration = Duration::from_secs(5);

fn failed(what: &str, e: &dyn std::error::Error) -> RemoteError {
    RemoteError::operation_failed(&format!("{what}: {}", crate::error_chain(e)))
}

/// The source path of a `<disk>` element, if it has one.
fn element_source(dev: &Element) -> Option<&str> {
    let s = dev.child("source")?;
    s.attr("file").or_else(|| s.attr("dev"))
}

/// Whether a device element is a removable drive (a CD-ROM) whose
/// medium a live update changes.
pub(super) fn is_removable(dev: &Element) -> bool {
    AsRef::<str>::as_ref(&dev.name) == "disk" && dev.attr("device") == Some("cdrom")
}

/// What rvirtd knows of a running VM's removable drives, by device
/// alias: each tray as DEVICE_TRAY_MOVED last said, and the format node
/// of each medium rvirtd inserted (`None`: ejected). rvirt-vmm's
/// `query-block` lists only drives that started with a medium, under the
/// node names of the command line, so this is the record after a change.
#[derive(Default)]
pub struct MediaState {
    trays: Mutex<HashMap<String, bool>>,
    media: Mutex<HashMap<String, Option<String>>>,
    next: Mutex<u64>,
}

impl MediaState {
    fn tray(&self, alias: &str) -> Option<bool> {
        self.trays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(alias)
            .copied()
    }

    fn set_tray(&self, alias: &str, open: bool) {
        self.trays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(alias.to_string(), open);
    }

    fn medium(&self, alias: &str) -> Option<Option<String>> {
        self.media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(alias)
            .cloned()
    }

    /// The first node number past every medium node rvirtd added (they
    /// are not in `query-block` under their names): a new node pair, a
    /// snapshot's or a medium's, starts there at the least.
    pub fn next_free(&self) -> u64 {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn used(&self, n: u64) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = (*next).max(n + 1);
    }

    fn set_medium(&self, alias: &str, node: Option<String>) {
        self.media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(alias.to_string(), node);
    }
}

/// Drive `alias`'s tray (open?) and its medium's format node: the
/// VMM's `query-block` where it lists the drive, else what the events
/// and rvirtd's own changes said (a tray starts closed).
fn drive_state(run: &Running, alias: &str) -> Result<(bool, Option<String>), RemoteError> {
    let info = run
        .qmp
        .execute("query-block", None)
        .map_err(|e| failed("query-block", &e))?;
    let listed = info
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["qdev"].as_str() == Some(alias));
    let open = listed
        .and_then(|b| b["tray_open"].as_bool())
        .or_else(|| run.media.tray(alias))
        .unwrap_or(false);
    let node = match run.media.medium(alias) {
        Some(n) => n,
        None => listed.and_then(|b| b["inserted"]["node-name"].as_str().map(str::to_string)),
    };
    Ok((open, node))
}

/// libvirt's live `<target tray='open'>` of a removable drive (no
/// attribute when closed).
fn set_tray(d: &mut Disk, open: bool) {
    if open {
        d.target_extra.set_attr("tray", "open");
    } else {
        let _ = d.target_extra.take_attr("tray");
    }
}

impl DomainDriver {
    /// The live half of an update of removable drive `dev` (its target
    /// names the drive; its `<source>`, or none, is the new medium).
    /// The caller holds the domain's job.
    pub(super) fn change_media_live(
        &self,
        name: &str,
        run: &Arc<Running>,
        dev: &Element,
        force: bool,
    ) -> Result<(), RemoteError> {
        let live = run.live();
        let target = dev
            .child("target")
            .and_then(|t| t.attr("dev"))
            .unwrap_or_default();
        let Some(index) = live
            .devices
            .disks
            .iter()
            .position(|d| d.target_dev == target)
        else {
            return Err(RemoteError::new(
                code::DEVICE_MISSING,
                from::DOMAIN,
                Some(&format!("no target device {target}")),
            ));
        };
        let disk: &Disk = &live.devices.disks[index];
        if disk.device != "cdrom" {
            return Err(RemoteError::new(
                code::OPERATION_UNSUPPORTED,
                from::QEMU,
                Some(&format!("disk '{target}' is not a removable drive")),
            ));
        }
        let new = element_source(dev).map(str::to_string);
        if new.as_deref() == disk.source_path() {
            // libvirt changes nothing when the source stays.
            return Ok(());
        }
        let alias = disk
            .info
            .alias
            .clone()
            .unwrap_or_else(|| rvirt_domain::names::disk_alias(disk));
        // The new image is checked before the tray moves: a file that is
        // not there changes nothing.
        if let Some(p) = &new {
            if let Err(e) = std::fs::File::open(p) {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
                    std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
                    _ => e.to_string(),
                };
                return Err(RemoteError::new(
                    code::SYSTEM_ERROR,
                    from::QEMU,
                    Some(&format!("Cannot access storage file '{p}': {why}")),
                ));
            }
        }
        let qmp = &run.qmp;
        let (open, old_node) = drive_state(run, &alias)?;
        if !open {
            qmp.execute(
                "blockdev-open-tray",
                Some(json!({ "id": alias, "force": force })),
            )
            .map_err(|e| failed("blockdev-open-tray", &e))?;
            let deadline = Instant::now() + TRAY_TIMEOUT;
            while !drive_state(run, &alias)?.0 {
                if Instant::now() >= deadline {
                    return Err(RemoteError::operation_failed(&format!(
                        "timed out waiting to open tray of '{target}'"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        qmp.execute("blockdev-remove-medium", Some(json!({ "id": alias })))
            .map_err(|e| failed("blockdev-remove-medium", &e))?;
        run.media.set_medium(&alias, None);
        if let Some(path) = &new {
            let node = self.insert_medium(run, disk, &alias, Path::new(path))?;
            run.media.set_medium(&alias, Some(node));
            qmp.execute("blockdev-close-tray", Some(json!({ "id": alias })))
                .map_err(|e| failed("blockdev-close-tray", &e))?;
        }
        // The old medium's nodes, now free, and its image.
        if let Some(fmt) = old_node {
            let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": fmt })));
            if let Some(storage) = fmt.strip_suffix("-format") {
                let storage = format!("{storage}-storage");
                let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": storage })));
            }
        }
        if let Some(old) = disk.source_path() {
            run.unlabel(Path::new(old));
        }
        run.update_live(|l| {
            let Some(d) = l.devices.disks.iter_mut().find(|d| d.target_dev == target) else {
                return;
            };
            match &new {
                Some(p) => {
                    let key = if d.disk_type == "block" {
                        "dev"
                    } else {
                        "file"
                    };
                    let mut source = d.source.clone().unwrap_or_else(|| Element::new("source"));
                    source.attrs.retain(|(k, _)| {
                        let k: &str = k.as_ref();
                        k != "file" && k != "dev"
                    });
                    d.source = Some(source.with_attr(key, Some(p.clone())));
                }
                None => d.source = None,
            }
            // An eject leaves the tray open, as libvirt's live XML says.
            set_tray(d, new.is_none());
        });
        self.save_record(name, run);
        tracing::info!(
            domain = name,
            disk = target,
            medium = new.as_deref().unwrap_or("(none)"),
            "medium changed"
        );
        Ok(())
    }

    /// The new medium at `path`: given to the VM's user when confined,
    /// passed open, added as libvirt's node pair (raw, read-only) and
    /// inserted; on failure everything taken back.
    fn insert_medium(
        &self,
        run: &Arc<Running>,
        disk: &Disk,
        alias: &str,
        path: &Path,
    ) -> Result<String, RemoteError> {
        let qmp = &run.qmp;
        let (_, next) = super::snapshot::top_nodes(run)?;
        run.media.used(next);
        let storage = format!("libvirt-{next}-storage");
        let format = format!("libvirt-{next}-format");
        let mut labelled: Option<PathBuf> = None;
        let mut fdset = None;
        let mut nodes: Vec<&str> = Vec::new();
        let result = (|| -> Result<(), RemoteError> {
            if let Some(label) = run.held.label {
                labelled =
                    Some(super::dac::set(path, label, false).map_err(|e| failed("label", &e))?);
            }
            let f = super::confine::open_disk(path, disk, true)
                .map_err(|e| failed(&format!("cannot open {}", path.display()), &e))?;
            let added = qmp
                .execute_with_fd(
                    "add-fd",
                    Some(json!({ "opaque": format!("{}-medium", disk.target_dev) })),
                    std::os::fd::AsFd::as_fd(&f),
                )
                .map_err(|e| failed("add-fd", &e))?;
            let set = added["fdset-id"].as_i64().unwrap_or(-1);
            fdset = Some(set);
            let driver = if disk.disk_type == "block" {
                "host_device"
            } else {
                "file"
            };
            qmp.execute(
                "blockdev-add",
                Some(json!({
                    "driver": driver,
                    "filename": format!("/dev/fdset/{set}"),
                    "node-name": storage,
                    "auto-read-only": true,
                    "discard": "unmap",
                })),
            )
            .map_err(|e| failed("blockdev-add", &e))?;
            nodes.push(&storage);
            qmp.execute(
                "blockdev-add",
                Some(json!({
                    "node-name": format,
                    "read-only": true,
                    "driver": "raw",
                    "file": storage,
                })),
            )
            .map_err(|e| failed("blockdev-add", &e))?;
            nodes.push(&format);
            qmp.execute(
                "blockdev-insert-medium",
                Some(json!({ "id": alias, "node-name": format })),
            )
            .map_err(|e| failed("blockdev-insert-medium", &e))?;
            Ok(())
        })();
        if let Some(set) = fdset {
            // The nodes hold their own copies.
            let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": set })));
        }
        if let Err(e) = result {
            for n in nodes.iter().rev() {
                let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": n })));
            }
            if let Some(p) = labelled {
                super::dac::restore(&p);
            }
            return Err(e);
        }
        if let Some(p) = labelled {
            run.label_later(vec![p]);
        }
        Ok(format)
    }

    /// DEVICE_TRAY_MOVED: libvirt's TRAY_CHANGE for the drive's alias.
    pub(super) fn on_tray_moved(
        &self,
        name: &str,
        run: &Arc<Running>,
        data: Option<&serde_json::Value>,
    ) {
        let Some(d) = data else { return };
        let Some(alias) = d["id"].as_str().filter(|a| !a.is_empty()) else {
            return;
        };
        let open = d["tray-open"].as_bool().unwrap_or(false);
        run.media.set_tray(alias, open);
        run.update_live(|l| {
            if let Some(disk) = l
                .devices
                .disks
                .iter_mut()
                .find(|x| x.info.alias.as_deref() == Some(alias))
            {
                set_tray(disk, open);
            }
        });
        self.save_record(name, run);
        let reason = if open {
            VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN
        } else {
            VIR_DOMAIN_EVENT_TRAY_CHANGE_CLOSE
        };
        let handle = self.reg().domains.get(name).map(|e| e.handle());
        if let Some(h) = handle {
            self.events.tray_change(&h, alias, reason);
        }
    }
}
