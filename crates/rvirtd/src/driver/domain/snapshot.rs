//! External disk-only snapshots, as libvirt 9.0's QEMU driver takes them
//! (qemu_snapshot.c): a qcow2 overlay per disk created by rvirtd over the
//! image in use (rvirt-block's image module, as vol-create), given to the
//! VM's user, passed open (`add-fd`), added as a file and a qcow2 node
//! (`blockdev-add`) and put on top of the disk in one `transaction` of
//! `blockdev-snapshot` actions, so every disk switches or none does. The
//! live and the persistent definitions then name the overlay, the live
//! one with the old image as its `<backingStore>`. A shut-off domain's
//! overlays are created and its definition redefined.
//!
//! Metadata: one `NAME.xml` per snapshot in `snapshot/DOMAIN/` beside the
//! domain definitions (libvirt's `/etc/libvirt/qemu/snapshot/DOM/`),
//! written atomically, holding the snapshot as `snapshot-dumpxml` shows
//! it. The current snapshot is the one no other names as its parent (the
//! chain is linear: each new snapshot's parent is the current one).

use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use rvirt_block::image::{self, CreateOptions, ImageFormat, Prealloc};
use rvirt_domain::xml::{self, Element};
use rvirt_domain::Domain;
use rvirt_remote::error::{code, from};
use rvirt_remote::types::NonnullDomainSnapshot;
use rvirt_remote::{NonnullDomain, RemoteError};
use serde_json::json;

use super::registry::Running;
use super::DomainDriver;

/// `virDomainSnapshotCreateFlags`.
pub mod create_flags {
    pub const REDEFINE: u32 = 1 << 0;
    pub const CURRENT: u32 = 1 << 1;
    pub const NO_METADATA: u32 = 1 << 2;
    pub const HALT: u32 = 1 << 3;
    pub const DISK_ONLY: u32 = 1 << 4;
    pub const REUSE_EXT: u32 = 1 << 5;
    pub const QUIESCE: u32 = 1 << 6;
    pub const ATOMIC: u32 = 1 << 7;
    pub const LIVE: u32 = 1 << 8;
    pub const VALIDATE: u32 = 1 << 9;
}

/// `virDomainSnapshotDeleteFlags`.
pub mod delete_flags {
    pub const CHILDREN: u32 = 1 << 0;
    pub const METADATA_ONLY: u32 = 1 << 1;
    pub const CHILDREN_ONLY: u32 = 1 << 2;
}

fn unsupported(code: i32, msg: &str) -> RemoteError {
    RemoteError::new(code, from::QEMU, Some(msg))
}

fn config_unsupported(msg: &str) -> RemoteError {
    unsupported(code::CONFIG_UNSUPPORTED, msg)
}

/// libvirt's answer for a snapshot name it does not know.
pub fn no_snapshot(name: &str) -> RemoteError {
    RemoteError::new(
        code::NO_DOMAIN_SNAPSHOT,
        from::DOMAIN_SNAPSHOT,
        Some(&format!("no domain snapshot with matching name '{name}'")),
    )
}

/// One `<disk>` of a snapshot definition.
#[derive(Debug, Clone)]
struct SnapDisk {
    name: String,
    /// `no`, `external`, `internal` or `manual`; none: the default.
    snapshot: Option<String>,
    file: Option<String>,
    format: Option<String>,
}

/// What a client's `<domainsnapshot>` asks for.
#[derive(Debug)]
struct Request {
    name: String,
    description: Option<String>,
    memory: Option<String>,
    disks: Vec<SnapDisk>,
}

fn parse_request(text: &str) -> Result<Request, RemoteError> {
    let root = xml::parse(text).map_err(|e| {
        RemoteError::new(
            code::XML_ERROR,
            from::DOMAIN_SNAPSHOT,
            Some(&format!("(domain_snapshot):{}", e)),
        )
    })?;
    if root.name != "domainsnapshot" {
        return Err(RemoteError::new(
            code::XML_ERROR,
            from::DOMAIN_SNAPSHOT,
            Some("domainsnapshot"),
        ));
    }
    let text_of = |n: &str| root.child(n).map(|e| e.text().trim().to_string());
    // Unnamed: the creation time, as libvirt names it.
    let name = text_of("name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| now().to_string());
    if name.contains('/') || name == "." || name == ".." {
        return Err(RemoteError::invalid_arg(&format!(
            "invalid snapshot name '{name}'"
        )));
    }
    let mut disks = Vec::new();
    if let Some(ds) = root.child("disks") {
        for d in ds.elements().filter(|e| e.name == "disk") {
            let Some(n) = d.attr("name") else {
                return Err(RemoteError::new(
                    code::XML_ERROR,
                    from::DOMAIN_SNAPSHOT,
                    Some("missing name from disk snapshot element"),
                ));
            };
            let src = d.child("source");
            disks.push(SnapDisk {
                name: n.to_string(),
                snapshot: d.attr("snapshot").map(str::to_string),
                file: src
                    .and_then(|s| s.attr("file").or_else(|| s.attr("dev")))
                    .map(str::to_string),
                format: d
                    .child("driver")
                    .and_then(|x| x.attr("type"))
                    .map(str::to_string),
            });
        }
    }
    Ok(Request {
        name,
        description: text_of("description"),
        memory: root
            .child("memory")
            .and_then(|m| m.attr("snapshot"))
            .map(str::to_string),
        disks,
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// libvirt's default overlay name: the image's path with its suffix
/// replaced by `.NAME` (virDomainSnapshotDefAssignExternalNames).
pub fn default_overlay(src: &str, snap: &str) -> String {
    let base = match src.rfind('.') {
        Some(i) if !src[i..].contains('/') => &src[..i],
        _ => src,
    };
    format!("{base}.{snap}")
}

/// One disk to snapshot: its index in the definition, the image in use,
/// the overlay to put over it.
#[derive(Debug, Clone)]
struct Plan {
    index: usize,
    target: String,
    image: String,
    image_format: String,
    overlay: String,
}

/// Matches the request's disks to the domain's, as
/// virDomainSnapshotAlignDisks does for a disk-only snapshot: a disk named
/// by target or path; unnamed writable disks external at the default
/// path, read-only ones and CD-ROMs not snapshotted.
fn align(def: &Domain, req: &Request) -> Result<Vec<Plan>, RemoteError> {
    let mut chosen: Vec<Option<&SnapDisk>> = vec![None; def.devices.disks.len()];
    for sd in &req.disks {
        let Some(i) = def
            .devices
            .disks
            .iter()
            .position(|d| d.target_dev == sd.name || d.source_path() == Some(sd.name.as_str()))
        else {
            return Err(config_unsupported(&format!("no disk named '{}'", sd.name)));
        };
        if chosen[i].is_some() {
            return Err(config_unsupported(&format!(
                "disk '{}' specified twice",
                sd.name
            )));
        }
        chosen[i] = Some(sd);
    }
    let mut plans = Vec::new();
    for (i, d) in def.devices.disks.iter().enumerate() {
        let sd = chosen[i];
        let mode = sd
            .and_then(|s| s.snapshot.clone())
            .or_else(|| sd.and_then(|s| s.file.as_ref()).map(|_| "external".into()))
            .unwrap_or_else(|| {
                if d.readonly || d.device != "disk" {
                    "no".into()
                } else {
                    "external".into()
                }
            });
        match mode.as_str() {
            "no" => continue,
            "external" => {}
            "internal" => {
                return Err(unsupported(
                    code::OPERATION_UNSUPPORTED,
                    &format!(
                        "internal snapshot of disk '{}' is not supported: rvirt takes external snapshots only",
                        d.target_dev
                    ),
                ))
            }
            other => {
                return Err(config_unsupported(&format!(
                    "unknown disk snapshot type '{other}'"
                )))
            }
        }
        if let Some(f) = sd.and_then(|s| s.format.as_deref()) {
            if f != "qcow2" {
                return Err(config_unsupported(&format!(
                    "external snapshot format for disk {} is unsupported: {f}",
                    d.target_dev
                )));
            }
        }
        if d.disk_type != "file" {
            return Err(config_unsupported(&format!(
                "external active snapshots are not supported on '{}' disks",
                d.disk_type
            )));
        }
        let Some(image) = d.source_path() else {
            return Err(config_unsupported(&format!(
                "cannot generate external snapshot name for disk '{}' without source",
                d.target_dev
            )));
        };
        let overlay = sd
            .and_then(|s| s.file.clone())
            .unwrap_or_else(|| default_overlay(image, &req.name));
        if overlay == image {
            return Err(config_unsupported(&format!(
                "cannot generate external snapshot name for disk '{}': collision with the disk source",
                d.target_dev
            )));
        }
        plans.push(Plan {
            index: i,
            target: d.target_dev.clone(),
            image: image.to_string(),
            image_format: d
                .driver
                .as_ref()
                .and_then(|x| x.format.clone())
                .unwrap_or_else(|| "raw".into()),
            overlay,
        });
    }
    for (k, p) in plans.iter().enumerate() {
        if plans[..k].iter().any(|q| q.overlay == p.overlay) {
            return Err(config_unsupported(&format!(
                "cannot generate external snapshot name for disk '{}': collision with another disk",
                p.target
            )));
        }
        // An existing file is never taken over (libvirt takes over an
        // empty one; rvirt does not, so no file it did not make is
        // formatted).
        if std::fs::symlink_metadata(&p.overlay).is_ok() {
            return Err(config_unsupported(&format!(
                "external snapshot file for disk {} already exists and is not a block device: {}",
                p.target, p.overlay
            )));
        }
    }
    if plans.is_empty() {
        return Err(config_unsupported(
            "disk-only snapshots require at least one disk to be selected for snapshot",
        ));
    }
    Ok(plans)
}

/// Creates every overlay (none left behind on failure).
fn create_overlays(plans: &[Plan]) -> Result<(), RemoteError> {
    for (k, p) in plans.iter().enumerate() {
        let made = image::inspect(Path::new(&p.image)).and_then(|info| {
            let format = ImageFormat::from_name(&p.image_format).unwrap_or(info.format);
            image::create(
                Path::new(&p.overlay),
                &CreateOptions {
                    format: ImageFormat::Qcow2,
                    capacity: info.capacity,
                    prealloc: Prealloc::Off,
                    backing: Some((p.image.clone(), format)),
                },
            )
        });
        if let Err(e) = made {
            remove_overlays(&plans[..k]);
            return Err(RemoteError::operation_failed(&crate::error_chain(&e)));
        }
    }
    Ok(())
}

fn remove_overlays(plans: &[Plan]) {
    for p in plans {
        let _ = std::fs::remove_file(&p.overlay);
    }
}

/// `d` switched to its overlay; with `chain`, the old image (and what was
/// below it) kept as its `<backingStore>`, as libvirt writes the live XML.
fn switch_disk(d: &mut rvirt_domain::model::Disk, p: &Plan, chain: bool) {
    let old_source = d.source.clone();
    let old_below = d.backing_store.take();
    let mut src = Element::new("source");
    src.set_attr("file", p.overlay.clone());
    d.source = Some(src);
    d.driver.get_or_insert_with(Default::default).format = Some("qcow2".into());
    if chain {
        let mut b = Element::new("backingStore");
        b.set_attr("type", "file");
        let mut f = Element::new("format");
        f.set_attr("type", p.image_format.clone());
        b.push(f);
        let mut s = Element::new("source");
        s.set_attr("file", p.image.clone());
        // Anything else the old source said (a seclabel, …) stays with it.
        if let Some(old) = old_source {
            for c in old.elements() {
                s.push(c.clone());
            }
        }
        b.push(s);
        b.push(old_below.unwrap_or_else(|| Element::new("backingStore")));
        d.backing_store = Some(b);
    }
}

impl DomainDriver {
    fn snapshot_dir(&self, dom: &str) -> PathBuf {
        self.tree.config_dir.join("snapshot").join(dom)
    }

    /// Every snapshot of `dom`: (name, its XML), in creation order.
    fn snapshots(&self, dom: &str) -> Vec<(String, Element)> {
        let Ok(rd) = std::fs::read_dir(self.snapshot_dir(dom)) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, String, Element)> = rd
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let name = p.file_name()?.to_str()?.strip_suffix(".xml")?.to_string();
                let text = std::fs::read_to_string(&p).ok()?;
                let el = xml::parse(&text).ok()?;
                let t = el
                    .child("creationTime")
                    .and_then(|c| c.text().trim().parse().ok())
                    .unwrap_or(0);
                Some((t, name, el))
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        // Within a second, a parent before its children.
        let mut ordered: Vec<(String, Element)> = Vec::new();
        while !out.is_empty() {
            let i = out
                .iter()
                .position(|(_, _, el)| {
                    parent_of(el).is_none_or(|p| {
                        ordered.iter().any(|(n, _)| *n == p) || !out.iter().any(|(_, n, _)| *n == p)
                    })
                })
                .unwrap_or(0);
            let (_, n, el) = out.remove(i);
            ordered.push((n, el));
        }
        ordered
    }

    /// The current snapshot: the newest one no other names as parent.
    fn current_snapshot(&self, dom: &str) -> Option<String> {
        let all = self.snapshots(dom);
        all.iter()
            .rev()
            .find(|(n, _)| {
                !all.iter()
                    .any(|(_, el)| parent_of(el).as_deref() == Some(n.as_str()))
            })
            .map(|(n, _)| n.clone())
    }

    fn snapshot_xml(&self, dom: &str, name: &str) -> Result<Element, RemoteError> {
        self.snapshots(dom)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, el)| el)
            .ok_or_else(|| no_snapshot(name))
    }

    fn snap_handle(&self, dom: &NonnullDomain, name: &str) -> NonnullDomainSnapshot {
        NonnullDomainSnapshot {
            name: name.to_string(),
            dom: dom.clone(),
        }
    }

    /// The name and handle of the domain a snapshot call names.
    fn snap_domain(&self, dom: &NonnullDomain) -> Result<(String, NonnullDomain), RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        Ok((e.name.clone(), e.handle()))
    }

    /// DOMAIN_SNAPSHOT_CREATE_XML.
    pub fn snapshot_create(
        &self,
        dom: &NonnullDomain,
        text: &str,
        flags: u32,
    ) -> Result<NonnullDomainSnapshot, RemoteError> {
        use create_flags::*;
        RemoteError::check_flags(
            flags,
            NO_METADATA | DISK_ONLY | ATOMIC | VALIDATE,
            "qemuDomainSnapshotCreateXML",
        )?;
        let req = parse_request(text)?;
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (name, handle, run, stored) = {
            let reg = self.reg();
            let e = reg.resolve(dom)?;
            (
                e.name.clone(),
                e.handle(),
                e.run.clone(),
                e.config.as_ref().map(|c| c.domain()).transpose()?,
            )
        };
        if flags & DISK_ONLY == 0 {
            // A snapshot with the guest's memory, or internal ones: rvirt
            // takes neither.
            return Err(unsupported(
                code::OPERATION_UNSUPPORTED,
                if run.is_some() {
                    "memory snapshots are not supported: use --disk-only"
                } else {
                    "internal snapshots are not supported: use --disk-only"
                },
            ));
        }
        if req.memory.as_deref().is_some_and(|m| m != "no") {
            return Err(config_unsupported(
                "memory state cannot be saved with offline or disk-only snapshot",
            ));
        }
        if flags & NO_METADATA == 0 && self.snapshot_xml(&name, &req.name).is_ok() {
            return Err(RemoteError::new(
                code::OPERATION_INVALID,
                from::DOMAIN_SNAPSHOT,
                Some(&format!("domain snapshot {} already exists", req.name)),
            ));
        }
        let before = match (&run, &stored) {
            (Some(r), _) => r.live(),
            (None, Some(d)) => d.clone(),
            (None, None) => return Err(RemoteError::operation_invalid("domain is not running")),
        };
        let plans = align(&before, &req)?;
        create_overlays(&plans)?;
        if let Some(run) = &run {
            if let Err(e) = self.snapshot_live(&name, run, &plans) {
                remove_overlays(&plans);
                return Err(e);
            }
            let mut live = (*run.live()).clone();
            for p in &plans {
                switch_disk(&mut live.devices.disks[p.index], p, true);
            }
            run.set_live(live);
            self.save_record(&name, run);
        }
        if let Some(def) = &stored {
            let mut def = (**def).clone();
            for p in &plans {
                // The persistent disk with the same target (it may differ
                // from the live one).
                if let Some(d) = def
                    .devices
                    .disks
                    .iter_mut()
                    .find(|d| d.target_dev == p.target && d.source_path() == Some(&p.image))
                {
                    switch_disk(d, p, false);
                }
            }
            if let Err(e) = self.define(&def.to_inactive_xml()) {
                if run.is_none() {
                    remove_overlays(&plans);
                }
                return Err(e);
            }
        }
        if flags & NO_METADATA == 0 {
            let parent = self.current_snapshot(&name);
            let el = metadata(&req, parent, &before, &plans, run.is_some());
            let mut out = String::new();
            xml::write(&mut out, &el, 0);
            let dir = self.snapshot_dir(&name);
            let saved = std::fs::create_dir_all(&dir).and_then(|_| {
                crate::fsutil::write_atomic(&dir.join(format!("{}.xml", req.name)), out.as_bytes())
            });
            if let Err(e) = saved {
                // The overlays are in use: only the metadata is missing.
                return Err(RemoteError::operation_failed(&format!(
                    "cannot save the metadata of snapshot '{}': {e}",
                    req.name
                )));
            }
        }
        tracing::info!(
            domain = name,
            snapshot = req.name,
            "disk-only snapshot taken"
        );
        Ok(self.snap_handle(&handle, &req.name))
    }

    /// The running half: each overlay given to the VM's user, passed,
    /// added as nodes, then all put on top in one transaction. On failure
    /// the nodes, descriptors and labels are taken back.
    fn snapshot_live(&self, name: &str, run: &Running, plans: &[Plan]) -> Result<(), RemoteError> {
        let qmp = &run.qmp;
        let failed = |what: &str, e: &dyn std::error::Error| {
            RemoteError::operation_failed(&format!("{what}: {}", crate::error_chain(e)))
        };
        let (top, next) = top_nodes(run)?;
        // Hot-plugged disks' nodes are not in query-block.
        let next = run.hotplug.next_node(next);
        let live = run.live();
        let mut labelled = Vec::new();
        let mut fdsets = Vec::new();
        let mut nodes: Vec<String> = Vec::new();
        let undo = |labelled: &[PathBuf], fdsets: &[i64], nodes: &[String]| {
            for n in nodes.iter().rev() {
                let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": n })));
            }
            for s in fdsets {
                let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": s })));
            }
            for p in labelled {
                super::dac::restore(p);
            }
        };
        let mut actions = Vec::new();
        let result = (|| -> Result<(), RemoteError> {
            for (k, p) in plans.iter().enumerate() {
                let Some(node) = top.get(&p.target) else {
                    return Err(RemoteError::operation_failed(&format!(
                        "disk '{}' not found in the VMM",
                        p.target
                    )));
                };
                let d = &live.devices.disks[p.index];
                if let Some(label) = run.held.label {
                    labelled.push(
                        super::dac::set(Path::new(&p.overlay), label, true)
                            .map_err(|e| failed("label", &e))?,
                    );
                }
                let f = super::confine::open_disk(Path::new(&p.overlay), d, false)
                    .map_err(|e| failed(&format!("cannot open {}", p.overlay), &e))?;
                let added = qmp
                    .execute_with_fd(
                        "add-fd",
                        Some(json!({ "opaque": format!("{}-snapshot", p.target) })),
                        std::os::fd::AsFd::as_fd(&f),
                    )
                    .map_err(|e| failed("add-fd", &e))?;
                let set = added["fdset-id"].as_i64().unwrap_or(-1);
                fdsets.push(set);
                let n = next + k as u64;
                let storage = format!("libvirt-{n}-storage");
                let format = format!("libvirt-{n}-format");
                let cache = d
                    .driver
                    .as_ref()
                    .and_then(|x| x.cache.as_deref())
                    .and_then(rvirt_vmm_config::disk::cache_mode);
                let mut file = json!({
                    "driver": "file",
                    "filename": format!("/dev/fdset/{set}"),
                    "node-name": storage,
                    "auto-read-only": true,
                    "discard": "unmap",
                });
                let mut fmt = json!({
                    "node-name": format,
                    "read-only": false,
                    "driver": "qcow2",
                    "file": storage,
                    "backing": null,
                });
                if let Some((c, _)) = cache {
                    let c = json!({ "direct": c.direct, "no-flush": c.no_flush });
                    file["cache"] = c.clone();
                    fmt["cache"] = c;
                }
                qmp.execute("blockdev-add", Some(file))
                    .map_err(|e| failed("blockdev-add", &e))?;
                nodes.push(storage);
                qmp.execute("blockdev-add", Some(fmt))
                    .map_err(|e| failed("blockdev-add", &e))?;
                nodes.push(format.clone());
                actions.push(json!({
                    "type": "blockdev-snapshot",
                    "data": { "node": node, "overlay": format },
                }));
            }
            qmp.execute("transaction", Some(json!({ "actions": actions })))
                .map_err(|e| failed("transaction", &e))?;
            for a in &actions {
                if let (Some(n), Some(o)) =
                    (a["data"]["node"].as_str(), a["data"]["overlay"].as_str())
                {
                    run.blocks.stacked(n, o);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            undo(&labelled, &fdsets, &nodes);
            return Err(e);
        }
        // The nodes hold their own copies now.
        for s in &fdsets {
            let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": s })));
        }
        run.label_later(labelled);
        tracing::debug!(domain = name, "overlays on top");
        Ok(())
    }

    /// Saves the runtime record of running `name` (its live XML changed).
    pub fn save_record(&self, name: &str, run: &std::sync::Arc<Running>) {
        let reg = self.reg();
        let Some(e) = reg.domains.get(name) else {
            return;
        };
        if let Err(err) = self.record_of(e, run).save(&self.tree.state_file(name)) {
            tracing::warn!(domain = name, error = %err, "cannot save runtime state");
        }
    }

    /// DOMAIN_LIST_ALL_SNAPSHOTS.
    pub fn snapshot_list(
        &self,
        dom: &NonnullDomain,
        flags: u32,
    ) -> Result<Vec<NonnullDomainSnapshot>, RemoteError> {
        // Only ROOTS (1), LEAVES (4), NO_LEAVES (8), METADATA (16),
        // INACTIVE/ACTIVE/DISK_ONLY (32/64/128), INTERNAL (256),
        // EXTERNAL (512) filter what rvirt has: a linear chain of
        // disk-only external snapshots with metadata.
        RemoteError::check_flags(flags, 0x7ff, "qemuDomainListAllSnapshots")?;
        let (name, handle) = self.snap_domain(dom)?;
        let all = self.snapshots(&name);
        let current = self.current_snapshot(&name);
        let leaf = |n: &str| Some(n) == current.as_deref();
        let kinds = flags & (32 | 64 | 128);
        let out = all
            .iter()
            .filter(|(n, el)| {
                (flags & 1 == 0 || parent_of(el).is_none())
                    && (flags & 4 == 0 || leaf(n))
                    && (flags & 8 == 0 || !leaf(n))
                    && flags & 2048 == 0
                    && (kinds == 0
                        || kinds & 128 != 0 && state_of(el) == "disk-snapshot"
                        || kinds & 32 != 0 && state_of(el) == "shutoff")
                    && flags & 256 == 0
            })
            .map(|(n, _)| self.snap_handle(&handle, n))
            .collect();
        Ok(out)
    }

    /// DOMAIN_SNAPSHOT_NUM.
    pub fn snapshot_num(&self, dom: &NonnullDomain) -> Result<i32, RemoteError> {
        let (name, _) = self.snap_domain(dom)?;
        Ok(self.snapshots(&name).len() as i32)
    }

    /// DOMAIN_SNAPSHOT_LOOKUP_BY_NAME.
    pub fn snapshot_lookup(
        &self,
        dom: &NonnullDomain,
        snap: &str,
    ) -> Result<NonnullDomainSnapshot, RemoteError> {
        let (name, handle) = self.snap_domain(dom)?;
        self.snapshot_xml(&name, snap)?;
        Ok(self.snap_handle(&handle, snap))
    }

    /// DOMAIN_SNAPSHOT_GET_XML_DESC.
    pub fn snapshot_get_xml(&self, snap: &NonnullDomainSnapshot) -> Result<String, RemoteError> {
        let (name, _) = self.snap_domain(&snap.dom)?;
        let el = self.snapshot_xml(&name, &snap.name)?;
        let mut out = String::new();
        xml::write(&mut out, &el, 0);
        Ok(out)
    }

    /// DOMAIN_SNAPSHOT_CURRENT (None: there is none).
    pub fn snapshot_current(
        &self,
        dom: &NonnullDomain,
    ) -> Result<Option<NonnullDomainSnapshot>, RemoteError> {
        let (name, handle) = self.snap_domain(dom)?;
        Ok(self
            .current_snapshot(&name)
            .map(|n| self.snap_handle(&handle, &n)))
    }

    /// DOMAIN_SNAPSHOT_IS_CURRENT.
    pub fn snapshot_is_current(&self, snap: &NonnullDomainSnapshot) -> Result<bool, RemoteError> {
        let (name, _) = self.snap_domain(&snap.dom)?;
        self.snapshot_xml(&name, &snap.name)?;
        Ok(self.current_snapshot(&name).as_deref() == Some(snap.name.as_str()))
    }

    /// DOMAIN_SNAPSHOT_GET_PARENT.
    pub fn snapshot_parent(
        &self,
        snap: &NonnullDomainSnapshot,
    ) -> Result<NonnullDomainSnapshot, RemoteError> {
        let (name, handle) = self.snap_domain(&snap.dom)?;
        let el = self.snapshot_xml(&name, &snap.name)?;
        match parent_of(&el) {
            Some(p) => Ok(self.snap_handle(&handle, &p)),
            None => Err(RemoteError::new(
                code::NO_DOMAIN_SNAPSHOT,
                from::DOMAIN_SNAPSHOT,
                Some(&format!("snapshot '{}' does not have a parent", snap.name)),
            )),
        }
    }

    /// The children of a snapshot (all descendants with `descendants`).
    pub fn snapshot_children(
        &self,
        snap: &NonnullDomainSnapshot,
        descendants: bool,
    ) -> Result<Vec<NonnullDomainSnapshot>, RemoteError> {
        let (name, handle) = self.snap_domain(&snap.dom)?;
        self.snapshot_xml(&name, &snap.name)?;
        let all = self.snapshots(&name);
        let mut found: Vec<String> = Vec::new();
        let mut frontier = vec![snap.name.clone()];
        while let Some(p) = frontier.pop() {
            for (n, el) in &all {
                if parent_of(el).as_deref() == Some(p.as_str()) && !found.contains(n) {
                    found.push(n.clone());
                    if descendants {
                        frontier.push(n.clone());
                    }
                }
            }
        }
        Ok(found.iter().map(|n| self.snap_handle(&handle, n)).collect())
    }

    /// DOMAIN_SNAPSHOT_DELETE: the metadata only (`--metadata`), as
    /// libvirt 9.0 deletes no external snapshot's files; children are
    /// given the deleted one's parent.
    pub fn snapshot_delete(
        &self,
        snap: &NonnullDomainSnapshot,
        flags: u32,
    ) -> Result<(), RemoteError> {
        use delete_flags::*;
        RemoteError::check_flags(
            flags,
            CHILDREN | METADATA_ONLY | CHILDREN_ONLY,
            "qemuDomainSnapshotDelete",
        )?;
        let (job, _) = self.job_of(&snap.dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (name, _) = self.snap_domain(&snap.dom)?;
        let el = self.snapshot_xml(&name, &snap.name)?;
        let mut doomed: Vec<String> = Vec::new();
        if flags & CHILDREN_ONLY == 0 {
            doomed.push(snap.name.clone());
        }
        if flags & (CHILDREN | CHILDREN_ONLY) != 0 {
            doomed.extend(
                self.snapshot_children(snap, true)?
                    .into_iter()
                    .map(|s| s.name),
            );
        }
        if flags & METADATA_ONLY == 0 && !doomed.is_empty() {
            return Err(config_unsupported(&format!(
                "deletion of {} external disk snapshots not supported",
                doomed.len()
            )));
        }
        let dir = self.snapshot_dir(&name);
        let parent = parent_of(&el);
        for (n, mut child) in self.snapshots(&name) {
            if doomed.contains(&n) || parent_of(&child).as_deref() != Some(snap.name.as_str()) {
                continue;
            }
            // Reparented, as libvirt does when a snapshot's metadata goes.
            let _ = child.take_children("parent");
            if let Some(p) = &parent {
                let mut pe = Element::new("parent");
                pe.push(Element::new("name").with_text(p.clone()));
                child.insert_before("creationTime", pe);
            }
            let mut out = String::new();
            xml::write(&mut out, &child, 0);
            crate::fsutil::write_atomic(&dir.join(format!("{n}.xml")), out.as_bytes())
                .map_err(|e| RemoteError::operation_failed(&format!("cannot save {n}: {e}")))?;
        }
        for n in &doomed {
            std::fs::remove_file(dir.join(format!("{n}.xml"))).map_err(|e| {
                RemoteError::operation_failed(&format!("cannot remove snapshot {n}: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The top format node of each disk (by target) as the VMM's
/// `query-block` names it, and the next free node number.
pub(super) fn top_nodes(
    run: &Running,
) -> Result<(std::collections::BTreeMap<String, String>, u64), RemoteError> {
    let info = run.qmp.execute("query-block", None).map_err(|e| {
        RemoteError::operation_failed(&format!("query-block: {}", crate::error_chain(&e)))
    })?;
    let mut top = std::collections::BTreeMap::new();
    // Past the nodes of media rvirtd inserted, which query-block does not name.
    let mut next = run.media.next_free();
    let live = run.live();
    for b in info.as_array().into_iter().flatten() {
        let Some(node) = b["inserted"]["node-name"].as_str() else {
            continue;
        };
        if let Some(n) = node
            .strip_prefix("libvirt-")
            .and_then(|s| s.strip_suffix("-format"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            next = next.max(n + 1);
        }
        let qdev = b["qdev"].as_str().unwrap_or_default();
        if let Some(d) = live
            .devices
            .disks
            .iter()
            .find(|d| d.info.alias.as_deref() == Some(qdev))
        {
            top.insert(d.target_dev.clone(), node.to_string());
        }
    }
    Ok((top, next))
}

fn parent_of(el: &Element) -> Option<String> {
    el.child("parent")
        .and_then(|p| p.child("name"))
        .map(|n| n.text().trim().to_string())
}

fn state_of(el: &Element) -> String {
    el.child("state")
        .map(|s| s.text().trim().to_string())
        .unwrap_or_default()
}

/// The snapshot as libvirt writes it: name, description, state, parent,
/// creation time, memory, disks (every disk of the domain, with what was
/// done to it), and the domain as it was before.
fn metadata(
    req: &Request,
    parent: Option<String>,
    before: &Domain,
    plans: &[Plan],
    running: bool,
) -> Element {
    let mut root = Element::new("domainsnapshot");
    root.push(Element::new("name").with_text(req.name.clone()));
    if let Some(d) = &req.description {
        root.push(Element::new("description").with_text(d.clone()));
    }
    root.push(Element::new("state").with_text(if running { "disk-snapshot" } else { "shutoff" }));
    if let Some(p) = parent {
        let mut pe = Element::new("parent");
        pe.push(Element::new("name").with_text(p));
        root.push(pe);
    }
    root.push(Element::new("creationTime").with_text(now().to_string()));
    let mut mem = Element::new("memory");
    mem.set_attr("snapshot", "no");
    root.push(mem);
    let mut disks = Element::new("disks");
    for (i, d) in before.devices.disks.iter().enumerate() {
        let mut de = Element::new("disk");
        de.set_attr("name", d.target_dev.clone());
        match plans.iter().find(|p| p.index == i) {
            Some(p) => {
                de.set_attr("snapshot", "external");
                de.set_attr("type", "file");
                let mut drv = Element::new("driver");
                drv.set_attr("type", "qcow2");
                de.push(drv);
                let mut s = Element::new("source");
                s.set_attr("file", p.overlay.clone());
                de.push(s);
            }
            None => de.set_attr("snapshot", "no"),
        }
        disks.push(de);
    }
    root.push(disks);
    if let Ok(dom) = xml::parse(&before.to_xml()) {
        root.push(dom);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_overlay_names_as_libvirt() {
        assert_eq!(default_overlay("/v/a.qcow2", "s1"), "/v/a.s1");
        assert_eq!(default_overlay("/v/a", "s1"), "/v/a.s1");
        assert_eq!(default_overlay("/v.d/a", "s1"), "/v.d/a.s1");
    }

    #[test]
    fn a_request_is_read() {
        let r = parse_request(
            "<domainsnapshot><name>s1</name><memory snapshot='no'/><disks>
               <disk name='vda' snapshot='external'><source file='/x/o'/></disk>
             </disks></domainsnapshot>",
        )
        .unwrap();
        assert_eq!(r.name, "s1");
        assert_eq!(r.disks[0].file.as_deref(), Some("/x/o"));
        assert!(parse_request("<domain/>").is_err());
        assert!(parse_request("<domainsnapshot><name>a/b</name></domainsnapshot>").is_err());
    }
}
