//! Volumes of a dir pool: the files in its directory, probed with
//! `rvirt_block::image`; created, cloned, resized, wiped and deleted as
//! libvirt's dir backend does (raw files and qcow2 images, which libvirt
//! makes with `qemu-img`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rvirt_block::image::{self, CreateOptions, ImageError, ImageFormat, Prealloc};
use rvirt_domain::storage::{BackingStore, Permissions, Timestamps, VolTarget, Volume};
use rvirt_remote::consts::storage::{resize, vol_create, vol_type, WIPE_ALG_ZERO};
use rvirt_remote::error::{code, from};
use rvirt_remote::types::{NonnullStoragePool, NonnullStorageVol};
use rvirt_remote::RemoteError;

use super::pools::os_text;
use super::{check_flags, hold, no_vol, system_error, StorageDriver, Vol};

/// Probes one directory entry; `None` for what is not a volume (sockets,
/// fifos, dangling links) or cannot be read (logged).
pub fn probe(path: &Path) -> Option<Vol> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        return Some(Vol {
            name,
            path: path.to_path_buf(),
            kind: vol_type::DIR,
            format: "dir".into(),
            capacity: meta.len(),
            allocation: meta.blocks() * 512,
            physical: meta.len(),
            backing: None,
        });
    }
    if !meta.is_file() {
        return None;
    }
    match image::inspect(path) {
        Ok(i) => Some(Vol {
            name,
            path: path.to_path_buf(),
            kind: vol_type::FILE,
            format: i.format.name().into(),
            capacity: i.capacity,
            allocation: i.allocation,
            physical: i.physical,
            backing: i.backing.map(|b| (b.path_from(path), b.format)),
        }),
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "volume skipped");
            None
        }
    }
}

/// The volumes of a pool directory, by name.
pub fn scan(dir: &Path) -> BTreeMap<String, Vol> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in rd.flatten() {
        if let Some(v) = probe(&entry.path()) {
            out.insert(v.name.clone(), v);
        }
    }
    out
}

fn timestamps(meta: &std::fs::Metadata) -> Timestamps {
    Timestamps {
        atime: format!("{}.{:09}", meta.atime(), meta.atime_nsec()),
        mtime: format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()),
        ctime: format!("{}.{:09}", meta.ctime(), meta.ctime_nsec()),
        // libvirt 9.0 does not read the birth time.
        btime: "0".into(),
    }
}

fn permissions(meta: &std::fs::Metadata) -> Permissions {
    Permissions {
        mode: Some(meta.mode() & 0o7777),
        owner: Some(i64::from(meta.uid())),
        group: Some(i64::from(meta.gid())),
        ..Default::default()
    }
}

/// `vol-dumpxml`: the volume as the file is now.
pub fn to_xml(v: &Vol) -> String {
    let meta = std::fs::metadata(&v.path).ok();
    let backing = v.backing.as_ref().map(|(path, format)| {
        let m = std::fs::metadata(path).ok();
        BackingStore {
            path: path.to_string_lossy().into_owned(),
            format: format.clone(),
            permissions: m.as_ref().map(permissions),
            timestamps: m.as_ref().map(timestamps),
            extra: Default::default(),
        }
    });
    let vol = Volume {
        kind: Some(
            if v.kind == vol_type::DIR {
                "dir"
            } else {
                "file"
            }
            .into(),
        ),
        name: v.name.clone(),
        key: Some(v.key()),
        capacity: Some(v.capacity),
        allocation: Some(v.allocation),
        physical: Some(v.physical),
        target: VolTarget {
            path: Some(v.key()),
            format: Some(v.format.clone()),
            permissions: meta.as_ref().map(permissions),
            timestamps: meta.as_ref().map(timestamps),
            extra: Default::default(),
        },
        backing,
        ..Default::default()
    };
    vol.to_xml()
}

/// A volume name refused as libvirt refuses it, or one that would leave
/// the pool's directory.
fn check_vol_name(name: &str) -> Result<(), RemoteError> {
    if name.contains('/') {
        return Err(RemoteError::operation_invalid(&format!(
            "volume name '{name}' cannot contain '/'"
        )));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
        return Err(RemoteError::operation_invalid(&format!(
            "volume name '{name}' is not valid"
        )));
    }
    Ok(())
}

fn image_error(e: &ImageError) -> RemoteError {
    match e {
        // libvirt's words when the file cannot be made that large.
        ImageError::Create(p, io) | ImageError::Resize(p, io)
            if io.raw_os_error() == Some(libc::EFBIG) =>
        {
            system_error(&format!(
                "cannot extend file '{}': {}",
                p.display(),
                os_text(io)
            ))
        }
        ImageError::Shrink { .. } => RemoteError::operation_invalid(
            "Can't shrink capacity below current capacity unless shrink flag explicitly specified",
        ),
        _ => system_error(&crate::error_chain(e)),
    }
}

/// What a volume request asks for, checked against the pool.
struct Request {
    name: String,
    opts: CreateOptions,
}

fn request(
    vol: &Volume,
    flags: u32,
    source: Option<&Vol>,
    pool_dir: &Path,
) -> Result<Request, RemoteError> {
    check_vol_name(&vol.name)?;
    let format = match vol
        .target
        .format
        .as_deref()
        .or(source.map(|s| s.format.as_str()))
    {
        None => ImageFormat::Raw,
        Some(f) => ImageFormat::from_name(f).ok_or_else(|| {
            RemoteError::new(
                code::CONFIG_UNSUPPORTED,
                from::STORAGE,
                Some(&format!("rvirt creates raw and qcow2 volumes, not '{f}'")),
            )
        })?,
    };
    let capacity = match (vol.capacity, source) {
        (Some(c), _) => c,
        (None, Some(s)) => s.capacity,
        (None, None) => return Err(RemoteError::xml_error("missing capacity element")),
    };
    // libvirt makes a raw file as large as its allocation, which
    // defaults to the capacity: `--allocation 0` asks for a sparse one.
    let prealloc = match format {
        ImageFormat::Raw if vol.allocation.unwrap_or(capacity) > 0 && capacity > 0 => {
            Prealloc::Full
        }
        ImageFormat::Raw => Prealloc::Off,
        ImageFormat::Qcow2 if flags & vol_create::PREALLOC_METADATA != 0 => Prealloc::Metadata,
        ImageFormat::Qcow2 => Prealloc::Off,
    };
    let backing = match &vol.backing {
        None => None,
        Some(_) if format == ImageFormat::Raw => {
            return Err(RemoteError::new(
                code::NO_SUPPORT,
                from::STORAGE,
                Some("backing storage not supported for raw volumes"),
            ))
        }
        Some(b) => {
            let path = if Path::new(&b.path).is_absolute() {
                PathBuf::from(&b.path)
            } else {
                pool_dir.join(&b.path)
            };
            let probed = image::inspect(&path).map_err(|e| image_error(&e))?;
            let bfmt = match b.format.as_deref() {
                None => probed.format,
                Some(f) => ImageFormat::from_name(f).ok_or_else(|| {
                    RemoteError::new(
                        code::CONFIG_UNSUPPORTED,
                        from::STORAGE,
                        Some(&format!("unknown backing store format '{f}'")),
                    )
                })?,
            };
            Some((path.to_string_lossy().into_owned(), bfmt))
        }
    };
    Ok(Request {
        name: vol.name.clone(),
        opts: CreateOptions {
            format,
            capacity,
            prealloc,
            backing,
        },
    })
}

/// Sets the mode, owner and group a request's `<permissions>` name.
fn apply_permissions(path: &Path, perms: Option<&Permissions>) -> Result<(), RemoteError> {
    let Some(p) = perms else { return Ok(()) };
    let fail = |e: std::io::Error| {
        system_error(&format!(
            "cannot set permissions of '{}': {}",
            path.display(),
            os_text(&e)
        ))
    };
    if let Some(m) = p.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(fail)?;
    }
    let id = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u32);
    if p.owner.is_some_and(|v| v >= 0) || p.group.is_some_and(|v| v >= 0) {
        std::os::unix::fs::chown(path, id(p.owner), id(p.group)).map_err(fail)?;
    }
    Ok(())
}

impl StorageDriver {
    /// STORAGE_VOL_CREATE_XML and STORAGE_VOL_CREATE_XML_FROM (with
    /// `clone_of`): a new volume, made outside the registry lock, the name
    /// held by the pool's job lock meanwhile.
    pub fn create_volume(
        &self,
        pool: &NonnullStoragePool,
        xml: &str,
        clone_of: Option<&NonnullStorageVol>,
        flags: u32,
    ) -> Result<NonnullStorageVol, RemoteError> {
        let function = if clone_of.is_some() {
            "storageVolCreateXMLFrom"
        } else {
            "storageVolCreateXML"
        };
        check_flags(
            flags,
            vol_create::PREALLOC_METADATA | vol_create::VALIDATE,
            function,
        )?;
        let vol = Volume::from_xml(xml).map_err(|e| RemoteError::xml_error(&e.to_string()))?;
        let job = self.job_of(pool)?;
        let _job = hold(&job);
        let (dir, source) = {
            let reg = self.reg();
            let e = reg.resolve(pool)?;
            e.check_active()?;
            if e.volumes.contains_key(&vol.name) {
                return Err(RemoteError::new(
                    code::STORAGE_VOL_EXIST,
                    from::STORAGE,
                    Some(&format!("'{}'", vol.name)),
                ));
            }
            let source = match clone_of {
                Some(c) => Some(reg.resolve_vol(c)?.1.clone()),
                None => None,
            };
            (e.dir(), source)
        };
        let req = request(&vol, flags, source.as_ref(), &dir)?;
        let path = dir.join(&req.name);
        if path.symlink_metadata().is_ok() {
            return Err(RemoteError::new(
                code::STORAGE_VOL_EXIST,
                from::STORAGE,
                Some(&format!("'{}'", vol.name)),
            ));
        }
        match &source {
            Some(s) => image::copy(&s.path, &path, &req.opts),
            None => image::create(&path, &req.opts),
        }
        .map_err(|e| image_error(&e))?;
        if let Err(e) = apply_permissions(&path, vol.target.permissions.as_ref()) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let made = probe(&path).ok_or_else(|| {
            system_error(&format!("cannot read the new volume '{}'", path.display()))
        })?;
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(pool)?;
            let h = e.vol_handle(&made);
            e.volumes.insert(made.name.clone(), made);
            h
        };
        self.update_sizes(&handle.pool);
        tracing::info!(pool = %handle.pool, volume = %handle.name, format = req.opts.format.name(), "volume created");
        Ok(handle)
    }

    /// STORAGE_VOL_DELETE. A volume a running domain uses is refused.
    pub fn delete_volume(&self, h: &NonnullStorageVol, flags: u32) -> Result<(), RemoteError> {
        check_flags(flags, 0, "storageVolDelete")?;
        let job = {
            let reg = self.reg();
            reg.by_name(&h.pool)?.job.clone()
        };
        let _job = hold(&job);
        let v = self.reg().resolve_vol(h)?.1.clone();
        if let Some(dom) = self.user_of(&v.path, &h.pool, &v.name) {
            tracing::info!(volume = %v.name, domain = %dom, "volume in use: not deleted");
            return Err(RemoteError::operation_invalid(&format!(
                "volume '{}' is still in use.",
                v.name
            )));
        }
        let removed = if v.kind == vol_type::DIR {
            std::fs::remove_dir(&v.path)
        } else {
            std::fs::remove_file(&v.path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(system_error(&format!(
                    "cannot unlink file '{}': {}",
                    v.path.display(),
                    os_text(&e)
                )))
            }
        }
        {
            let mut reg = self.reg();
            if let Some(e) = reg.pools.get_mut(&h.pool) {
                e.volumes.remove(&v.name);
            }
        }
        self.update_sizes(&h.pool);
        tracing::info!(pool = %h.pool, volume = %v.name, "volume deleted");
        Ok(())
    }

    /// Probes a volume again and records what it is now.
    pub fn reprobe(&self, h: &NonnullStorageVol) -> Result<Vol, RemoteError> {
        let path = self.reg().resolve_vol(h)?.1.path.clone();
        let v = probe(&path)
            .ok_or_else(|| no_vol(&format!("no storage vol with matching name '{}'", h.name)))?;
        let mut reg = self.reg();
        if let Some(e) = reg.pools.get_mut(&h.pool) {
            e.volumes.insert(v.name.clone(), v.clone());
        }
        Ok(v)
    }

    /// STORAGE_VOL_RESIZE.
    pub fn resize_volume(
        &self,
        h: &NonnullStorageVol,
        capacity: u64,
        flags: u32,
    ) -> Result<(), RemoteError> {
        check_flags(
            flags,
            resize::ALLOCATE | resize::DELTA | resize::SHRINK,
            "storageVolResize",
        )?;
        let (v, available) = {
            let reg = self.reg();
            let (p, v) = reg.resolve_vol(h)?;
            (v.clone(), p.live.as_ref().map_or(0, |l| l.available))
        };
        let target = if flags & resize::DELTA != 0 {
            if flags & resize::SHRINK != 0 {
                v.capacity.checked_sub(capacity).ok_or_else(|| {
                    RemoteError::invalid_arg("can't shrink capacity below size zero")
                })?
            } else {
                v.capacity
                    .checked_add(capacity)
                    .ok_or_else(|| RemoteError::invalid_arg("capacity overflows"))?
            }
        } else {
            capacity
        };
        if target < v.capacity && flags & resize::SHRINK == 0 {
            return Err(RemoteError::invalid_arg(
                "Can't shrink capacity below current capacity unless shrink flag explicitly specified",
            ));
        }
        if target > v.capacity && flags & resize::ALLOCATE != 0 && target - v.capacity > available {
            return Err(RemoteError::operation_failed(
                "Not enough space left in storage pool",
            ));
        }
        if v.kind != vol_type::FILE {
            return Err(RemoteError::new(
                code::NO_SUPPORT,
                from::STORAGE,
                Some("storage pool does not support changing of volume capacity"),
            ));
        }
        image::resize(
            &v.path,
            target,
            flags & resize::SHRINK != 0,
            flags & resize::ALLOCATE != 0,
        )
        .map_err(|e| image_error(&e))?;
        self.reprobe(h)?;
        self.update_sizes(&h.pool);
        Ok(())
    }

    /// STORAGE_VOL_WIPE(_PATTERN): zeroes, as libvirt writes them (a sparse
    /// file is emptied and set to its length again, so it stays sparse;
    /// otherwise zeroes are written over it). libvirt runs `scrub` for the
    /// other algorithms; rvirt does not.
    pub fn wipe_volume(
        &self,
        h: &NonnullStorageVol,
        algorithm: u32,
        flags: u32,
    ) -> Result<(), RemoteError> {
        check_flags(flags, 0, "storageVolWipePattern")?;
        if algorithm != WIPE_ALG_ZERO {
            return Err(RemoteError::new(
                code::OPERATION_UNSUPPORTED,
                from::STORAGE,
                Some(&format!(
                    "wiping algorithm {algorithm} needs scrub, which rvirt does not run"
                )),
            ));
        }
        let v = self.reg().resolve_vol(h)?.1.clone();
        if v.kind != vol_type::FILE {
            return Err(RemoteError::operation_invalid(&format!(
                "cannot wipe volume '{}' of type dir",
                v.name
            )));
        }
        if let Some(dom) = self.user_of(&v.path, &h.pool, &v.name) {
            tracing::info!(volume = %v.name, domain = %dom, "volume in use: not wiped");
            return Err(RemoteError::operation_invalid(&format!(
                "volume '{}' is still in use.",
                v.name
            )));
        }
        zero_file(&v.path).map_err(|e| {
            system_error(&format!(
                "Failed to wipe volume '{}': {}",
                v.path.display(),
                os_text(&e)
            ))
        })?;
        self.reprobe(h)?;
        Ok(())
    }
}

/// Zeroes a file in place, keeping its length.
fn zero_file(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let meta = f.metadata()?;
    let len = meta.len();
    if meta.blocks() * 512 < len {
        f.set_len(0)?;
        f.set_len(len)?;
    } else {
        let zeros = vec![0u8; 1 << 20];
        f.seek(SeekFrom::Start(0))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
    }
    f.sync_all()
}
