//! Confining a domain's VMM (the Dom0/DomU split for KVM): what rvirtd
//! prepares before the VMM exists and releases after it is gone.
//!
//! - the jail (crates/jail): the VMM's user and group, no capabilities,
//!   no_new_privs, its own mount namespace whose root holds a minimal /dev,
//!   a private /tmp and, bound read-only, the program with its libraries
//!   and the files the definition names that the VMM opens by path (kernel,
//!   initrd, disks not passed open); a cgroup with the definition's
//!   `<memtune>` and `<cputune>` limits; rlimits;
//! - ownership (`dac.rs`): files the VMM writes given to its user;
//! - descriptors: disk images (every image of a qcow2 chain, read from
//!   the headers where the definition names none) and chardev files
//!   opened by rvirtd and passed with `-add-fd` (the monitor and taps are
//!   passed by `vmm.rs`);
//! - `-sandbox on,…` on the command line: the VMM's own seccomp filters
//!   per thread and Landlock (crates/vmm/src/sandbox).
//!
//! What a running VM holds ([`Held`]) is kept in its runtime record, so a
//! restarted rvirtd releases it too.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rvirt_domain::xml::Element;
use rvirt_domain::Domain;
use rvirt_jail::{Bind, Cgroup, Device, Jail, Limits, Rlimit};
use rvirt_remote::RemoteError;
use serde::{Deserialize, Serialize};

use super::dac::{self, Label};

/// How rvirtd confines the VMMs it starts (`--user`/`--group`, as
/// qemu.conf's `user`/`group`).
#[derive(Debug, Clone)]
pub struct Confinement {
    pub label: Label,
    /// `-sandbox …,x-log=on`: forbidden calls logged by the kernel and
    /// allowed, for finding what a filter lacks.
    pub seccomp_log: bool,
}

/// What a running VM holds that must be given back when it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The VMM's user and group.
    pub label: Option<Label>,
    /// Files given to that user (symlinks resolved).
    pub labelled: Vec<PathBuf>,
    /// Its cgroup directories.
    pub cgroup_v2: Option<PathBuf>,
    pub cgroup_v1: Vec<PathBuf>,
}

impl Held {
    fn cgroup(&self) -> Option<Cgroup> {
        (self.cgroup_v2.is_some() || !self.cgroup_v1.is_empty()).then(|| Cgroup {
            v2: self.cgroup_v2.clone(),
            v1: self.cgroup_v1.clone(),
        })
    }

    /// Gives every labelled file its owner and mode back.
    pub fn restore_labels(&self) {
        for p in &self.labelled {
            dac::restore(p);
        }
    }

    /// Kills what is left in the cgroup (the VMM's teardown child) and
    /// removes it; true when nothing of it is left.
    pub fn remove_cgroup(&self) -> bool {
        self.cgroup()
            .is_none_or(|cg| cg.remove(Duration::from_secs(5)))
    }

    /// Records in `dir` that this VM's cgroup is about to be removed, so
    /// that a daemon stopped before the removal ends (it waits for the
    /// VMM's teardown child) removes it at its next start
    /// ([`sweep_cgroups`]): by then the runtime record that named it is
    /// gone. Returns the record, to delete once the cgroup is.
    pub fn note_cgroup_removal(&self, dir: &Path) -> Option<PathBuf> {
        let cg = self.cgroup()?;
        // The cgroup's own name is unique across daemons and restarts.
        let name = cg.v2.as_ref().or(cg.v1.first())?.file_name()?;
        let path = dir.join(format!("{}.json", name.to_string_lossy()));
        let only = Held {
            cgroup_v2: self.cgroup_v2.clone(),
            cgroup_v1: self.cgroup_v1.clone(),
            ..Held::default()
        };
        let data = serde_json::to_vec(&only).ok()?;
        match crate::fsutil::write_atomic(&path, &data) {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot record a cgroup to remove");
                None
            }
        }
    }

    /// Both, for a VM found dead.
    pub fn release(&self) {
        self.restore_labels();
        self.remove_cgroup();
    }
}

/// Removes the cgroups [`Held::note_cgroup_removal`] recorded in `dir`
/// that a previous daemon did not finish removing. Only directories named
/// `rvirt/NAME` in a cgroup mount are touched, whatever a record says.
pub fn sweep_cgroups(dir: &Path) {
    let records = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for path in records.map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let held = std::fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice::<Held>(&d).ok());
        let gone = match held {
            Some(h)
                if h.cgroup_v2
                    .iter()
                    .chain(&h.cgroup_v1)
                    .all(|p| is_vm_cgroup(p)) =>
            {
                tracing::info!(record = %path.display(), "removing a stopped VM's cgroup left by the previous daemon");
                h.remove_cgroup()
            }
            _ => {
                tracing::warn!(record = %path.display(), "unusable cgroup record dropped");
                true
            }
        };
        if gone {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether `p` is a VM's cgroup as [`Cgroup::create`] names them.
fn is_vm_cgroup(p: &Path) -> bool {
    p.starts_with("/sys/fs/cgroup")
        && p.parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "rvirt")
        && p.file_name().is_some()
        && !p
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// What [`prepare`] made for a start.
pub struct Prepared {
    pub held: Held,
    pub jail: Option<Arc<rvirt_jail::Prepared>>,
    /// Opened files to pass, by what they stand for (a chardev id).
    pub files: BTreeMap<String, OwnedFd>,
}

/// The libraries of each program a jail runs (a VMM, passt), found once
/// (by the dynamic loader).
fn shared_objects(vmm: &Path) -> Vec<PathBuf> {
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Vec<PathBuf>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    c.entry(vmm.to_path_buf())
        .or_insert_with(|| {
            rvirt_jail::shared_objects(vmm).unwrap_or_else(|e| {
                tracing::warn!(vmm = %vmm.display(), error = %e, "cannot list the VMM's libraries");
                Vec::new()
            })
        })
        .clone()
}

fn failed(what: impl std::fmt::Display) -> RemoteError {
    RemoteError::operation_failed(&what.to_string())
}

/// The element's text as a number, scaled by its `unit` (KiB default).
fn kib(e: &Element) -> Option<u64> {
    rvirt_domain::units::to_kib(e.text().trim(), e.attr("unit")).ok()
}

/// `<memtune>` and `<cputune>` as cgroup limits.
pub fn limits(def: &Domain) -> Limits {
    let mut l = Limits {
        // Threads of one VM: its vCPUs and a few dozen helpers; a bound
        // against a VMM that forks or spawns without end.
        pids_max: Some(1024),
        ..Limits::default()
    };
    if let Some(m) = def.extra.child("memtune") {
        l.memory_max = m.child("hard_limit").and_then(kib).map(|k| k * 1024);
        l.memory_high = m.child("soft_limit").and_then(kib).map(|k| k * 1024);
    }
    if let Some(c) = &def.cputune {
        let num = |name: &str| {
            c.child(name)
                .and_then(|e| e.text().trim().parse::<i64>().ok())
        };
        l.cpu_shares = num("shares").and_then(|s| u64::try_from(s).ok());
        // The whole VM's bandwidth; a per-vCPU one (period/quota, which
        // libvirt sets on each vCPU's own group) is given to the VM as
        // vCPUs × quota.
        let global = num("global_quota").zip(num("global_period"));
        let per_vcpu = num("quota")
            .zip(num("period"))
            .map(|(q, p)| (q.saturating_mul(def.vcpu.count as i64), p));
        l.cpu_max = global
            .or(per_vcpu)
            .filter(|(q, p)| *q > 0 && *p > 0)
            .map(|(q, p)| (q as u64, p as u64));
    }
    l
}

/// A name for the VM's cgroup, unique across daemons and restarts.
fn cgroup_name(name: &str) -> String {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("qemu-{stamp}-{clean}")
}

/// Labels, opens and lays out everything for `def`'s confined VMM. On
/// failure whatever was labelled is given back.
pub fn prepare(
    conf: &Confinement,
    vmm: &Path,
    def: &Domain,
    name: &str,
    rundir: &Path,
) -> Result<Prepared, RemoteError> {
    let mut held = Held {
        label: Some(conf.label),
        ..Held::default()
    };
    match prepare_in(conf, vmm, def, name, rundir, &mut held) {
        Ok((jail, files)) => Ok(Prepared {
            held,
            jail: Some(Arc::new(jail)),
            files,
        }),
        Err(e) => {
            held.release();
            Err(e)
        }
    }
}

fn prepare_in(
    conf: &Confinement,
    vmm: &Path,
    def: &Domain,
    name: &str,
    rundir: &Path,
    held: &mut Held,
) -> Result<(rvirt_jail::Prepared, BTreeMap<String, OwnedFd>), RemoteError> {
    let label = conf.label;
    let mut binds: Vec<Bind> = Vec::new();
    let vmm = std::fs::canonicalize(vmm).unwrap_or_else(|_| vmm.to_path_buf());
    binds.push(Bind {
        path: vmm.clone(),
        writable: false,
    });
    for lib in shared_objects(&vmm) {
        binds.push(Bind {
            path: lib,
            writable: false,
        });
    }
    // Without a <kernel>, firmware: the <loader> ROM, or the SeaBIOS file
    // rvirt-vmm picks for the machine (vmm-config's rule, so both agree).
    let firmware = def
        .os
        .kernel
        .is_none()
        .then(|| match def.os.extra.child("loader") {
            Some(l) => PathBuf::from(l.text().trim()),
            None => rvirt_vmm_config::find_firmware(rvirt_vmm_config::default_bios(
                def.os.machine.as_deref().unwrap_or("pc"),
            )),
        });
    // A VGA's BIOS, which rvirt-vmm reads by path when it makes the
    // device (QEMU's default romfile): a display needs it in the jail too.
    let vga_rom = def
        .devices
        .others
        .iter()
        .any(|o| o.kind() == "video")
        .then(|| PathBuf::from(rvirt_vmm_config::VGA_ROMFILE));
    // The kernel, initrd and firmware are read by path at every boot:
    // bound read-only, given to the VM's user only if it cannot read them.
    let by_path = [&def.os.kernel, &def.os.initrd]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .chain(firmware)
        .chain(vga_rom);
    for p in by_path {
        let p = p.as_path();
        if !p.exists() {
            // Absent inside the jail too: the VMM reports it, naming it.
            continue;
        }
        if !dac::readable_by(p, label) {
            held.labelled
                .push(dac::set(p, label, false).map_err(|e| failed(crate::error_chain(&e)))?);
        }
        binds.push(Bind {
            path: p.to_path_buf(),
            writable: false,
        });
    }
    // Disks: opened here with the flags their cache mode means and passed
    // (-add-fd); writable ones are also given to the VM's user, as libvirt
    // does, read-only ones keep their owner and mode.
    let mut files = BTreeMap::new();
    for d in &def.devices.disks {
        let Some(src) = d.source_path() else { continue };
        let p = Path::new(src);
        let writable = !d.readonly;
        if writable {
            held.labelled.push(
                dac::set(p, label, !d.shareable).map_err(|e| failed(crate::error_chain(&e)))?,
            );
        }
        let f =
            open_disk(p, d, d.readonly).map_err(|e| failed(format!("cannot open {src}: {e}")))?;
        files.insert(d.target_dev.clone(), OwnedFd::from(f));
        // The images of its <backingStore> chain, read-only, as libvirt
        // passes every node: the VMM opens none of them by name.
        for (k, below) in rvirt_domain::backing_paths(d).iter().enumerate() {
            let f = open_disk(Path::new(below), d, true)
                .map_err(|e| failed(format!("cannot open {below}: {e}")))?;
            files.insert(
                rvirt_domain::backing_key(&d.target_dev, k + 1),
                OwnedFd::from(f),
            );
        }
    }
    // Chardev files: opened (created) here and passed.
    let devs = &def.devices;
    let serials_are_consoles = devs.serials.is_empty();
    let serials = if serials_are_consoles {
        devs.consoles.iter().take(1).collect::<Vec<_>>()
    } else {
        devs.serials.iter().collect()
    };
    let mut chardev_files: Vec<(String, &rvirt_domain::model::Chardev)> = serials
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("charserial{i}"), c))
        .collect();
    chardev_files.extend(
        devs.consoles
            .iter()
            .enumerate()
            .filter(|(_, c)| c.target_type() == Some("virtio"))
            .map(|(i, c)| (format!("charconsole{i}"), c)),
    );
    let parallels = rvirt_domain::argv::parallel_chardevs(def);
    chardev_files.extend(parallels.iter().map(|(id, c)| (id.clone(), c)));
    let mut ptys = false;
    for (id, c) in chardev_files {
        match c.dev_type.as_str() {
            "pty" => ptys = true,
            "file" => {
                let Some(path) = c.source_attr("path") else {
                    continue;
                };
                let append = c.source_attr("append") == Some("on");
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create(true).mode(0o600);
                if append {
                    o.append(true);
                } else {
                    o.truncate(true);
                }
                let f = o
                    .open(path)
                    .map_err(|e| failed(format!("cannot open {path}: {e}")))?;
                held.labelled.push(
                    dac::set(Path::new(path), label, true)
                        .map_err(|e| failed(crate::error_chain(&e)))?,
                );
                files.insert(id, OwnedFd::from(f));
            }
            _ => {}
        }
    }
    // A VNC server on a unix socket creates it: its directory is bound
    // writable (the domain's own `vnc/`, given to the VM's user, unless
    // the definition names another; the user's permissions apply there).
    for o in &def.devices.others {
        if o.kind() != "graphics" || o.dev_type() != Some("vnc") {
            continue;
        }
        let rvirt_domain::argv::VncListen::Socket(Some(sock)) =
            rvirt_domain::argv::vnc_listen(&o.element)
        else {
            continue;
        };
        let Some(dir) = Path::new(&sock).parent() else {
            continue;
        };
        if dir == rundir.join("vnc") {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::os::unix::fs::chown(dir, Some(label.uid), Some(label.gid)))
                .map_err(|e| failed(format!("cannot prepare {}: {e}", dir.display())))?;
        }
        binds.push(Bind {
            path: dir.to_path_buf(),
            writable: true,
        });
    }
    for o in &def.devices.others {
        if o.kind() != "rng" {
            continue;
        }
        let file = o
            .element
            .child("backend")
            .map(|b| b.text())
            .unwrap_or_default();
        let file = file.trim();
        if !file.is_empty() && !matches!(file, "/dev/urandom" | "/dev/random") {
            binds.push(Bind {
                path: PathBuf::from(file),
                writable: false,
            });
        }
    }
    let mut devices = vec![
        Device::Null,
        Device::Zero,
        Device::Full,
        Device::Random,
        Device::Urandom,
        Device::Kvm,
    ];
    if ptys {
        devices.push(Device::Ptys);
    }
    let cgroup = match Cgroup::create(&cgroup_name(name), &limits(def)) {
        Ok(cg) => {
            held.cgroup_v2 = cg.v2.clone();
            held.cgroup_v1 = cg.v1.clone();
            Some(cg)
        }
        Err(e) => return Err(failed(format!("cgroup: {}", crate::error_chain(&e)))),
    };
    let root = rundir.join("root");
    std::fs::create_dir_all(&root)
        .map_err(|e| failed(format!("cannot create {}: {e}", root.display())))?;
    let mut rlimits = vec![
        // No core dumps: they would hold guest memory.
        Rlimit {
            resource: libc::RLIMIT_CORE,
            limit: 0,
        },
        Rlimit {
            resource: libc::RLIMIT_NOFILE,
            limit: 4096,
        },
        Rlimit {
            resource: libc::RLIMIT_MSGQUEUE,
            limit: 0,
        },
    ];
    // The cgroup's pids.max bounds each VM's tasks. Only where it cannot,
    // a per-user backstop: all VMs share that one count, so it would cap
    // how many VMs run (16,384 tasks stop near 2,340 VMs of 7 threads).
    if !cgroup.as_ref().is_some_and(Cgroup::bounds_pids) {
        rlimits.push(Rlimit {
            resource: libc::RLIMIT_NPROC,
            limit: 16_384,
        });
    }
    let jail = Jail {
        uid: label.uid,
        gid: label.gid,
        root,
        binds,
        devices,
        rlimits,
        tmp_size: 16 << 20,
        proc_self: false,
        cgroup,
    };
    let prepared = jail
        .prepare()
        .map_err(|e| failed(format!("jail: {}", crate::error_chain(&e))))?;
    Ok((prepared, files))
}

/// The jail of a domain's passt (`passt.rs`): the VM's user and group and
/// cgroup, a root holding the passt program and its libraries, /dev/null
/// and /dev/urandom, a /proc of its own processes, the host's resolv.conf (passt reads the resolvers it
/// forwards DNS to) and `writable` (its pid file's directory, a log file).
/// Its socket is passed open.
pub fn passt_jail(
    program: &Path,
    label: Label,
    held: &Held,
    root: &Path,
    writable: &[PathBuf],
) -> Result<Arc<rvirt_jail::Prepared>, RemoteError> {
    let mut binds = vec![Bind {
        path: program.to_path_buf(),
        writable: false,
    }];
    for lib in shared_objects(program) {
        binds.push(Bind {
            path: lib,
            writable: false,
        });
    }
    let resolv = Path::new("/etc/resolv.conf");
    if resolv.exists() {
        binds.push(Bind {
            path: resolv.to_path_buf(),
            writable: false,
        });
    }
    for w in writable {
        binds.push(Bind {
            path: w.clone(),
            writable: true,
        });
    }
    std::fs::create_dir_all(root)
        .map_err(|e| failed(format!("cannot create {}: {e}", root.display())))?;
    let jail = Jail {
        uid: label.uid,
        gid: label.gid,
        root: root.to_path_buf(),
        binds,
        devices: vec![Device::Null, Device::Urandom],
        rlimits: vec![Rlimit {
            resource: libc::RLIMIT_CORE,
            limit: 0,
        }],
        tmp_size: 1 << 20,
        // passt reads /proc/self/exe (to tell passt from pasta) and writes
        // its own uid_map when it sandboxes itself.
        proc_self: true,
        cgroup: held.cgroup(),
    };
    jail.prepare()
        .map(Arc::new)
        .map_err(|e| failed(format!("jail: {}", crate::error_chain(&e))))
}

/// `program` as an absolute path (what a jail binds): itself if it has a
/// `/`, else the first file of that name on the PATH, as Command finds it.
pub fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return std::fs::canonicalize(program).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// A `<backend logFile>` for a jailed passt: created if missing and given
/// to the VM's user (given back when the VM ends), as libvirt labels it.
pub fn passt_log_file(path: &Path, label: Label, held: &mut Held) -> Result<PathBuf, RemoteError> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(format!("cannot open {}: {e}", path.display())))?;
    let labelled = dac::set(path, label, true).map_err(|e| failed(crate::error_chain(&e)))?;
    held.labelled.push(labelled.clone());
    Ok(labelled)
}

/// `def` with the backing chain of every qcow2 disk whose definition names
/// none read from the image headers, as libvirt 9.0 does before it passes
/// every node (qemuDomainDetermineDiskChain): a confined VMM opens no file
/// by name, so the images its header names are opened here and passed
/// too. A header naming a backing file without its format is refused (as
/// libvirt does: probing would let whoever writes the backing file choose
/// what the VMM reads). `None` when nothing changes.
pub fn fill_chains(def: &Domain) -> Result<Option<Domain>, RemoteError> {
    let mut out: Option<Domain> = None;
    for (i, d) in def.devices.disks.iter().enumerate() {
        let qcow2 = d.driver.as_ref().and_then(|x| x.format.as_deref()) == Some("qcow2");
        let Some(src) = d
            .source_path()
            .filter(|_| qcow2 && d.backing_store.is_none())
        else {
            continue;
        };
        let mut chain: Vec<(PathBuf, &'static str)> = Vec::new();
        let mut image = PathBuf::from(src);
        loop {
            if chain.len() >= rvirt_block::MAX_CHAIN {
                return Err(failed(format!("backing chain of {src} is too long")));
            }
            let info =
                rvirt_block::image::inspect(&image).map_err(|e| failed(crate::error_chain(&e)))?;
            let Some(b) = info.backing else { break };
            let format = match b.format.as_deref() {
                Some("qcow2") => "qcow2",
                Some("raw") => "raw",
                Some(other) => {
                    return Err(failed(format!(
                        "backing image '{}' of '{}' has format '{other}'",
                        b.name,
                        image.display()
                    )))
                }
                None => {
                    return Err(failed(format!(
                        "format of backing image '{}' of image '{}' was not specified in the image metadata",
                        b.name,
                        image.display()
                    )))
                }
            };
            let below = b.path_from(&image);
            chain.push((below.clone(), format));
            if format == "raw" {
                break;
            }
            image = below;
        }
        if chain.is_empty() {
            continue;
        }
        // Deepest first: each <backingStore> holds the next one down, the
        // last an empty one (nothing below).
        let mut next = Element::new("backingStore");
        for (path, format) in chain.iter().rev() {
            let block = std::fs::metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_block_device()
            });
            let mut e = Element::new("backingStore");
            e.set_attr("type", if block { "block" } else { "file" });
            let mut f = Element::new("format");
            f.set_attr("type", *format);
            e.push(f);
            let mut source = Element::new("source");
            source.set_attr(
                if block { "dev" } else { "file" },
                path.display().to_string(),
            );
            e.push(source);
            e.push(next);
            next = e;
        }
        out.get_or_insert_with(|| def.clone()).devices.disks[i].backing_store = Some(next);
    }
    Ok(out)
}

/// Opens an image of disk `d` as rvirt-vmm would (rvirt_block's open):
/// read-only or read-write, O_DIRECT and O_DSYNC as its cache mode means
/// (O_DSYNC cannot be added to an open file later).
pub(super) fn open_disk(
    path: &Path,
    d: &rvirt_domain::model::Disk,
    read_only: bool,
) -> std::io::Result<std::fs::File> {
    let mode = d.driver.as_ref().and_then(|x| x.cache.as_deref());
    let (cache, writeback) = mode
        .and_then(rvirt_vmm_config::disk::cache_mode)
        .unwrap_or((rvirt_vmm_config::Cache::default(), true));
    let mut flags = 0;
    if cache.direct {
        flags |= libc::O_DIRECT;
    }
    if !writeback && !cache.no_flush && !read_only {
        flags |= libc::O_DSYNC;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(flags)
        .open(path)
}

/// The `<seclabel>` libvirt writes in the live XML of a DAC-labelled
/// domain.
pub fn annotate(live: &mut Domain, label: Label) {
    // The definition's own DAC label (if it had one) is replaced by the
    // one in force; labels of other models stay.
    let others: Vec<Element> = live
        .extra
        .take_children("seclabel")
        .into_iter()
        .filter(|e| e.attr("model") != Some("dac"))
        .collect();
    for e in others {
        live.extra.push(e);
    }
    let text = label.to_string();
    let mut s = Element::new("seclabel");
    s.set_attr("type", "dynamic");
    s.set_attr("model", "dac");
    s.set_attr("relabel", "yes");
    s.push(Element::new("label").with_text(text.clone()));
    s.push(Element::new("imagelabel").with_text(text));
    live.extra.push(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vm_cgroups_are_swept() {
        assert!(is_vm_cgroup(Path::new("/sys/fs/cgroup/rvirt/a-1")));
        assert!(is_vm_cgroup(Path::new("/sys/fs/cgroup/memory/rvirt/a-1")));
        for p in [
            "/sys/fs/cgroup/system.slice",
            "/sys/fs/cgroup/rvirt",
            "/sys/fs/cgroup/rvirt/../system.slice/x",
            "/etc/rvirt/x",
        ] {
            assert!(!is_vm_cgroup(Path::new(p)), "{p}");
        }
    }

    /// A cgroup whose removal a stopped daemon did not finish is removed
    /// by the next one; a record naming anything else is dropped unused.
    /// (Needs root, as every confinement test does.)
    #[test]
    fn a_recorded_cgroup_is_removed_at_the_next_start() {
        let name = format!("sweep-test-{}", std::process::id());
        let cg = Cgroup::create(&name, &Limits::default()).expect("cgroup (run as root)");
        let held = Held {
            cgroup_v2: cg.v2.clone(),
            cgroup_v1: cg.v1.clone(),
            ..Held::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let record = held.note_cgroup_removal(dir.path()).expect("recorded");
        let dirs: Vec<PathBuf> = cg.v2.iter().chain(&cg.v1).cloned().collect();
        assert!(!dirs.is_empty() && dirs.iter().all(|d| d.is_dir()));
        let bad = dir.path().join("bad.json");
        let hostile = Held {
            cgroup_v2: Some(PathBuf::from("/sys/fs/cgroup/init.scope")),
            ..Held::default()
        };
        std::fs::write(&bad, serde_json::to_vec(&hostile).unwrap()).unwrap();
        sweep_cgroups(dir.path());
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} removed");
        assert!(!record.exists() && !bad.exists(), "records dropped");
    }

    #[test]
    fn the_label_in_force_replaces_a_defined_dac_label_and_keeps_others() {
        let mut dom = Domain::from_xml(
            "<domain type='kvm'><name>s</name><memory>65536</memory><os><type>hvm</type></os>
               <seclabel type='dynamic' model='dac' relabel='yes'/>
               <seclabel type='none' model='selinux'/>
             </domain>",
        )
        .unwrap();
        annotate(&mut dom, Label { uid: 995, gid: 996 });
        let xml = dom.to_xml();
        assert_eq!(xml.matches("model='dac'").count(), 1, "{xml}");
        assert!(xml.contains("model='selinux'"), "{xml}");
        assert!(xml.contains("<label>+995:+996</label>"), "{xml}");
        assert!(xml.contains("<imagelabel>+995:+996</imagelabel>"), "{xml}");
    }
}
