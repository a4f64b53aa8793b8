//! The storage driver: storage pools of type `dir` and their volumes, as
//! libvirt's storage driver keeps them.
//!
//! - Pools: persistent definitions and autostart links in a
//!   [`Store`] (`etc/rvirt/storage`); the live
//!   definition of each running pool in `run/rvirt/storage/NAME.xml`, so a
//!   restarted daemon knows which pools run. Sizes from the filesystem
//!   (statvfs), as libvirt computes them.
//! - Volumes: the files of a running pool's directory, found again on
//!   every refresh (start, `pool-refresh`, a daemon restart), never stored;
//!   each one probed through `rvirt_block::image` (format, virtual size,
//!   allocation, backing file). A volume's key is its path.
//! - The `default` pool (`/var/lib/libvirt/images` under the daemon's
//!   root), defined, built, started and autostarted on the first start in
//!   system mode, as libvirt's packages set it up.
//!
//! | module | job |
//! | --- | --- |
//! | [`calls`] | the `StorageCalls` group of the procedure table |
//! | [`pools`] | define, start, build, destroy, delete, undefine, refresh, lists |
//! | [`volumes`] | create, clone, delete, resize, wipe, info, XML, lookups |
//! | [`transfer`] | upload and download over libvirt's streams |
//!
//! Locks: a pool's job lock (held across an operation that changes the
//! pool or its volumes: start, destroy, refresh, volume create/delete),
//! then the registry (short lookups and updates). Nothing waits for a
//! domain under either; the domain driver is asked whether a volume is in
//! use through [`StorageDriver::set_in_use`] with no storage lock held.

pub mod calls;
pub mod pools;
pub mod transfer;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use rvirt_domain::storage::Pool;
use rvirt_remote::error::{code, from};
use rvirt_remote::types::{NonnullStoragePool, NonnullStorageVol};
use rvirt_remote::{RemoteError, Uuid};

use crate::paths::Tree;
use crate::server::events::EventHub;
use crate::store::{Definition, Store};
use crate::Config;

impl Definition for Pool {
    const KIND: &'static str = "storage pool";

    fn parse(text: &str) -> Result<Self, String> {
        Pool::from_xml(text).map_err(|e| e.to_string())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn to_xml(&self) -> String {
        Pool::to_xml(self)
    }

    fn check_stored(&self) -> Result<(), String> {
        match self.uuid {
            Some(_) => Ok(()),
            None => Err("it has no UUID".into()),
        }
    }
}

/// One volume of a running pool, as last probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vol {
    pub name: String,
    pub path: PathBuf,
    /// `virStorageVolType`: file or dir.
    pub kind: u8,
    /// `raw`, `qcow2`, `dir`.
    pub format: String,
    pub capacity: u64,
    pub allocation: u64,
    pub physical: u64,
    /// The backing file's path and format, as the image names them.
    pub backing: Option<(PathBuf, Option<String>)>,
}

impl Vol {
    /// Its key: the path, as for every volume of a dir pool.
    pub fn key(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// One pool in the registry.
pub struct PoolEntry {
    pub name: String,
    pub uuid: Uuid,
    /// The persistent definition (none for a transient pool).
    pub config: Option<Pool>,
    /// The definition it runs with, sizes filled in (none when inactive).
    pub live: Option<Pool>,
    pub autostart: bool,
    /// Volumes by name, while it runs.
    pub volumes: BTreeMap<String, Vol>,
    /// Held across an operation that changes the pool or its volumes.
    pub job: Arc<Mutex<()>>,
}

impl PoolEntry {
    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }

    pub fn is_persistent(&self) -> bool {
        self.config.is_some()
    }

    /// The definition in force: the live one while running.
    pub fn def(&self) -> &Pool {
        match (&self.live, &self.config) {
            (Some(l), _) => l,
            (None, Some(c)) => c,
            // An entry always has one or the other.
            (None, None) => unreachable!("a pool with no definition"),
        }
    }

    pub fn handle(&self) -> NonnullStoragePool {
        NonnullStoragePool {
            name: self.name.clone(),
            uuid: self.uuid,
        }
    }

    pub fn vol_handle(&self, v: &Vol) -> NonnullStorageVol {
        NonnullStorageVol {
            pool: self.name.clone(),
            name: v.name.clone(),
            key: v.key(),
        }
    }

    /// The target directory.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(&self.def().target.path)
    }

    /// Fails unless the pool runs, as libvirt does.
    pub fn check_active(&self) -> Result<(), RemoteError> {
        if self.is_active() {
            Ok(())
        } else {
            Err(RemoteError::operation_invalid(&format!(
                "storage pool '{}' is not active",
                self.name
            )))
        }
    }
}

/// The pools by name.
#[derive(Default)]
pub struct Registry {
    pub pools: BTreeMap<String, PoolEntry>,
}

impl Registry {
    pub fn by_name(&self, name: &str) -> Result<&PoolEntry, RemoteError> {
        self.pools
            .get(name)
            .ok_or_else(|| no_pool(&format!("no storage pool with matching name '{name}'")))
    }

    pub fn by_uuid(&self, uuid: &Uuid) -> Result<&PoolEntry, RemoteError> {
        self.pools
            .values()
            .find(|p| p.uuid == *uuid)
            .ok_or_else(|| no_pool(&format!("no storage pool with matching uuid '{uuid}'")))
    }

    /// The pool a call's handle names (by UUID, as libvirt resolves it).
    pub fn resolve(&self, h: &NonnullStoragePool) -> Result<&PoolEntry, RemoteError> {
        self.pools
            .values()
            .find(|p| p.uuid == h.uuid)
            .ok_or_else(|| {
                no_pool(&format!(
                    "no storage pool with matching uuid '{}' ({})",
                    h.uuid, h.name
                ))
            })
    }

    pub fn resolve_mut(&mut self, h: &NonnullStoragePool) -> Result<&mut PoolEntry, RemoteError> {
        let name = self.resolve(h)?.name.clone();
        Ok(self.pools.get_mut(&name).expect("just found"))
    }

    /// The running pool and volume a volume handle names.
    pub fn resolve_vol(&self, h: &NonnullStorageVol) -> Result<(&PoolEntry, &Vol), RemoteError> {
        let pool = self.by_name(&h.pool)?;
        pool.check_active()?;
        let vol = pool
            .volumes
            .get(&h.name)
            .ok_or_else(|| no_vol(&format!("no storage vol with matching name '{}'", h.name)))?;
        Ok((pool, vol))
    }

    /// The volume whose key (its path) is `key`, in any running pool.
    pub fn by_key(&self, key: &str) -> Option<(&PoolEntry, &Vol)> {
        self.pools.values().filter(|p| p.is_active()).find_map(|p| {
            p.volumes
                .values()
                .find(|v| v.path.as_os_str() == key)
                .map(|v| (p, v))
        })
    }
}

/// libvirt's "Storage pool not found" (VIR_ERR_NO_STORAGE_POOL).
pub fn no_pool(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_STORAGE_POOL, from::STORAGE, Some(detail))
}

/// libvirt's "Storage volume not found" (VIR_ERR_NO_STORAGE_VOL).
pub fn no_vol(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_STORAGE_VOL, from::STORAGE, Some(detail))
}

/// A failed system call, as libvirt's `virReportSystemError` words it.
pub fn system_error(detail: &str) -> RemoteError {
    RemoteError::new(code::SYSTEM_ERROR, from::STORAGE, Some(detail))
}

/// libvirt's `virCheckFlags`: flags outside `known` are refused, naming
/// the driver function.
pub fn check_flags(flags: u32, known: u32, function: &str) -> Result<(), RemoteError> {
    let unknown = flags & !known;
    if unknown == 0 {
        return Ok(());
    }
    Err(RemoteError::new(
        code::INVALID_ARG,
        from::STORAGE,
        Some(&format!(
            "unsupported flags (0x{unknown:x}) in function {function}"
        )),
    ))
}

/// Which running domain uses a path (or a pool's volume by name), asked of
/// the domain driver.
pub type InUse = dyn Fn(&Path, &str, &str) -> Option<String> + Send + Sync;

/// The storage driver.
pub struct StorageDriver {
    pub tree: Tree,
    /// Persistent pool definitions and autostart links.
    pub store: Store<Pool>,
    reg: Mutex<Registry>,
    pub events: Arc<EventHub>,
    in_use: OnceLock<Box<InUse>>,
    /// Itself, for streams that outlive the call.
    me: Weak<StorageDriver>,
}

impl StorageDriver {
    pub fn new(cfg: &Config, events: Arc<EventHub>) -> Arc<Self> {
        Arc::new_cyclic(|me| StorageDriver {
            store: Store::new(
                &cfg.tree.storage_config_dir,
                &cfg.tree.storage_autostart_dir,
            ),
            tree: cfg.tree.clone(),
            reg: Mutex::new(Registry::default()),
            events,
            in_use: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// This driver as an `Arc`.
    pub fn arc(&self) -> Arc<Self> {
        // The driver lives in an Arc from `new` until the daemon exits.
        self.me.upgrade().expect("the storage driver is alive")
    }

    pub fn reg(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the driver how to ask which running domain uses a volume.
    pub fn set_in_use(&self, f: Box<InUse>) {
        let _ = self.in_use.set(f);
    }

    /// The running domain that uses `vol` of `pool`, if any.
    pub fn user_of(&self, path: &Path, pool: &str, vol: &str) -> Option<String> {
        self.in_use.get().and_then(|f| f(path, pool, vol))
    }

    /// The job lock of the pool a handle names.
    pub fn job_of(&self, h: &NonnullStoragePool) -> Result<Arc<Mutex<()>>, RemoteError> {
        Ok(self.reg().resolve(h)?.job.clone())
    }

    /// The live-definition file of a running pool.
    fn state_file(&self, name: &str) -> PathBuf {
        self.tree.storage_state_dir.join(format!("{name}.xml"))
    }

    /// The path and format of volume `vol` of running pool `pool`, for a
    /// domain disk `<source pool= volume=/>`.
    pub fn resolve_disk(&self, pool: &str, vol: &str) -> Result<(PathBuf, String), RemoteError> {
        let reg = self.reg();
        let p = reg.by_name(pool)?;
        p.check_active()?;
        let v = p
            .volumes
            .get(vol)
            .ok_or_else(|| no_vol(&format!("no storage vol with matching name '{vol}'")))?;
        Ok((v.path.clone(), v.format.clone()))
    }
}

/// Locks a job mutex, whatever a panicking holder left.
pub fn hold(job: &Mutex<()>) -> MutexGuard<'_, ()> {
    job.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A UUID in the wire form.
pub fn wire_uuid(u: &uuid::Uuid) -> Uuid {
    Uuid(*u.as_bytes())
}
