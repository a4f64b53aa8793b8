//! Pools: definitions, lifecycle, refresh, lists, and the daemon's start.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use rvirt_domain::storage::{Permissions, Pool, PoolType};
use rvirt_remote::consts::storage::{build, create, event, list, DEFINE_VALIDATE};
use rvirt_remote::error::{code, from};
use rvirt_remote::types::NonnullStoragePool;
use rvirt_remote::RemoteError;

use super::{
    check_flags, hold, no_pool, system_error, volumes, wire_uuid, PoolEntry, Registry,
    StorageDriver,
};
use crate::fsutil::write_atomic;

/// The mode libvirt gives a dir pool's directory it builds.
const DEFAULT_DIR_MODE: u32 = 0o711;

/// Marks that the `default` pool was set up once, so an undefined one
/// does not come back at the next start.
const DEFAULT_POOL_MADE: &str = ".default-pool-made";

/// Parses a pool document for define or create: every problem with its
/// line (VIR_ERR_XML_ERROR), and only the `dir` backend.
pub fn parse(xml: &str) -> Result<Pool, RemoteError> {
    let def = Pool::from_xml(xml).map_err(|e| RemoteError::xml_error(&e.to_string()))?;
    if def.kind != PoolType::DIR {
        return Err(RemoteError::internal(&format!(
            "missing backend for pool type {} ({})",
            def.kind.number(),
            def.kind.name()
        )));
    }
    Ok(def)
}

/// Gives `def` the UUID of the pool of the same name, and refuses clashes
/// of names, UUIDs and target directories as libvirt does.
fn reconcile(reg: &Registry, def: &mut Pool) -> Result<(), RemoteError> {
    if let Some(e) = reg.pools.get(&def.name) {
        match def.uuid {
            None => def.uuid = Some(uuid::Uuid::from_bytes(e.uuid.0)),
            Some(u) if wire_uuid(&u) != e.uuid => {
                return Err(RemoteError::operation_failed(&format!(
                    "pool '{}' is already defined with uuid {}",
                    def.name, e.uuid
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(u) = def.uuid {
        let w = wire_uuid(&u);
        if let Some(other) = reg
            .pools
            .values()
            .find(|e| e.uuid == w && e.name != def.name)
        {
            return Err(RemoteError::operation_failed(&format!(
                "pool '{}' already exists with uuid {}",
                other.name, w
            )));
        }
    }
    if let Some(other) = reg
        .pools
        .values()
        .find(|e| e.name != def.name && e.def().target.path == def.target.path)
    {
        return Err(RemoteError::operation_failed(&format!(
            "Storage source conflict with pool: '{}'",
            other.name
        )));
    }
    if def.uuid.is_none() {
        def.uuid = Some(uuid::Uuid::new_v4());
    }
    Ok(())
}

fn write_failed(e: &dyn std::error::Error) -> RemoteError {
    RemoteError::new(
        code::WRITE_FAILED,
        from::STORAGE,
        Some(&crate::error_chain(e)),
    )
}

/// The directory's permissions as the live XML shows them.
fn dir_permissions(dir: &Path) -> Option<Permissions> {
    let m = std::fs::metadata(dir).ok()?;
    Some(Permissions {
        mode: Some(m.mode() & 0o7777),
        owner: Some(i64::from(m.uid())),
        group: Some(i64::from(m.gid())),
        ..Default::default()
    })
}

/// Fills in a running pool's sizes from the filesystem, as libvirt does:
/// capacity the filesystem's size, available its free blocks, allocation
/// the rest.
fn fill_sizes(def: &mut Pool) -> Result<(), RemoteError> {
    let dir = Path::new(&def.target.path);
    let st = rustix::fs::statvfs(dir).map_err(|e| {
        system_error(&format!(
            "cannot statvfs path '{}': {}",
            dir.display(),
            std::io::Error::from(e)
        ))
    })?;
    def.capacity = st.f_frsize.saturating_mul(st.f_blocks);
    def.available = st.f_frsize.saturating_mul(st.f_bfree);
    def.allocation = def.capacity.saturating_sub(def.available);
    if let Some(p) = dir_permissions(dir) {
        let label = def
            .target
            .permissions
            .as_ref()
            .and_then(|x| x.label.clone());
        def.target.permissions = Some(Permissions { label, ..p });
    }
    Ok(())
}

/// Opens the pool's directory as libvirt's dir backend checks it at start.
fn check_dir(path: &str) -> Result<(), RemoteError> {
    std::fs::read_dir(path)
        .map(drop)
        .map_err(|e| system_error(&format!("cannot open directory '{path}': {}", os_text(&e))))
}

/// An I/O error's text without Rust's "(os error N)" suffix, as libvirt
/// prints strerror.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl StorageDriver {
    /// Reads the stored definitions and the running pools' live state at
    /// daemon start; sets up the `default` pool on a system tree's first
    /// start; starts what is marked autostart.
    pub fn load(&self) {
        {
            let mut reg = self.reg();
            for l in self.store.load_all() {
                let Some(uuid) = l.def.uuid else { continue };
                reg.pools.insert(
                    l.def.name.clone(),
                    PoolEntry {
                        name: l.def.name.clone(),
                        uuid: wire_uuid(&uuid),
                        config: Some(l.def),
                        live: None,
                        autostart: l.autostart,
                        volumes: BTreeMap::new(),
                        job: Arc::default(),
                    },
                );
            }
        }
        self.recover_running();
        if self.tree.mode == rvirt_remote::uri::Mode::System {
            self.make_default_pool();
        }
        let autostart: Vec<NonnullStoragePool> = self
            .reg()
            .pools
            .values()
            .filter(|p| p.autostart && !p.is_active())
            .map(PoolEntry::handle)
            .collect();
        for h in autostart {
            if let Err(e) = self.start(&h, 0) {
                tracing::warn!(pool = %h.name, error = %e, "autostart failed");
            }
        }
    }

    /// Pools that ran when the daemon stopped run again (their directory
    /// still there), volumes found anew; others are forgotten.
    fn recover_running(&self) {
        let dir = &self.tree.storage_state_dir;
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            let live = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| Pool::from_xml(&t).map_err(|e| e.to_string()));
            let mut live = match live {
                Ok(l) if l.uuid.is_some() => l,
                Ok(_) | Err(_) => {
                    tracing::warn!(file = %path.display(), "unreadable pool state removed");
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            };
            if check_dir(&live.target.path).is_err() || fill_sizes(&mut live).is_err() {
                tracing::warn!(pool = %live.name, "pool directory gone: pool inactive");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let vols = volumes::scan(Path::new(&live.target.path));
            let mut reg = self.reg();
            let uuid = wire_uuid(&live.uuid.expect("checked"));
            let e = reg.pools.entry(live.name.clone()).or_insert(PoolEntry {
                name: live.name.clone(),
                uuid,
                config: None,
                live: None,
                autostart: false,
                volumes: BTreeMap::new(),
                job: Arc::default(),
            });
            if e.uuid != uuid {
                tracing::warn!(pool = %live.name, "pool state of another UUID removed");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            e.live = Some(live);
            e.volumes = vols;
            tracing::info!(pool = %e.name, volumes = e.volumes.len(), "pool running again");
        }
    }

    /// The `default` pool libvirt's packages set up: a dir pool on
    /// `/var/lib/libvirt/images` (under the daemon's root), built and
    /// autostarted, once per tree.
    fn make_default_pool(&self) {
        let marker = self.tree.storage_config_dir.join(DEFAULT_POOL_MADE);
        if marker.exists() || self.reg().pools.contains_key("default") {
            return;
        }
        let mut path = String::new();
        rvirt_domain::xml::escape_into(&mut path, &self.tree.images_dir.to_string_lossy());
        let xml = format!(
            "<pool type='dir'><name>default</name><target><path>{path}</path></target></pool>"
        );
        let made = self.define(&xml, 0).and_then(|h| {
            self.build(&h, 0)?;
            self.set_autostart(&h, true)?;
            Ok(h)
        });
        match made {
            Ok(_) => {
                if let Err(e) = write_atomic(&marker, b"") {
                    tracing::warn!(error = %e, "cannot mark the default pool as made");
                }
                tracing::info!(dir = %self.tree.images_dir.display(), "default pool defined");
            }
            Err(e) => tracing::warn!(error = %e, "cannot define the default pool"),
        }
    }

    /// STORAGE_POOL_DEFINE_XML.
    pub fn define(&self, xml: &str, flags: u32) -> Result<NonnullStoragePool, RemoteError> {
        check_flags(flags, DEFINE_VALIDATE, "storagePoolDefineXML")?;
        let mut def = parse(xml)?;
        let handle = {
            let mut reg = self.reg();
            reconcile(&reg, &mut def)?;
            self.store.save(&def).map_err(|e| write_failed(&e))?;
            let uuid = wire_uuid(&def.uuid.expect("reconciled"));
            let name = def.name.clone();
            match reg.pools.get_mut(&name) {
                Some(e) => e.config = Some(def),
                None => {
                    reg.pools.insert(
                        name.clone(),
                        PoolEntry {
                            name: name.clone(),
                            uuid,
                            config: Some(def),
                            live: None,
                            autostart: false,
                            volumes: BTreeMap::new(),
                            job: Arc::default(),
                        },
                    );
                }
            }
            reg.by_name(&name)?.handle()
        };
        tracing::info!(pool = %handle.name, "storage pool defined");
        self.events.pool_lifecycle(&handle, event::DEFINED, 0);
        Ok(handle)
    }

    /// STORAGE_POOL_CREATE_XML: a transient pool, started at once.
    pub fn create_xml(&self, xml: &str, flags: u32) -> Result<NonnullStoragePool, RemoteError> {
        let known =
            create::WITH_BUILD | create::WITH_BUILD_OVERWRITE | create::WITH_BUILD_NO_OVERWRITE;
        check_flags(flags, known, "storagePoolCreateXML")?;
        let mut def = parse(xml)?;
        let clash = |reg: &Registry, def: &Pool| -> Result<(), RemoteError> {
            match reg.pools.get(&def.name) {
                Some(e) => Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is already {}",
                    e.name,
                    if e.is_active() { "active" } else { "defined" }
                ))),
                None => Ok(()),
            }
        };
        {
            let reg = self.reg();
            clash(&reg, &def)?;
            reconcile(&reg, &mut def)?;
        }
        if flags != 0 {
            build_dir(&def)?;
        }
        let (live, vols) = self.prepare(def)?;
        let handle = {
            let mut reg = self.reg();
            if let Err(e) = clash(&reg, &live).and_then(|()| {
                let mut again = live.clone();
                reconcile(&reg, &mut again)
            }) {
                let _ = std::fs::remove_file(self.state_file(&live.name));
                return Err(e);
            }
            let e = PoolEntry {
                name: live.name.clone(),
                uuid: wire_uuid(&live.uuid.expect("reconciled")),
                config: None,
                live: Some(live),
                autostart: false,
                volumes: vols,
                job: Arc::default(),
            };
            let h = e.handle();
            reg.pools.insert(e.name.clone(), e);
            h
        };
        tracing::info!(pool = %handle.name, "transient storage pool started");
        self.events.pool_lifecycle(&handle, event::STARTED, 0);
        Ok(handle)
    }

    /// What a pool runs with: its directory checked, sizes and volumes
    /// read, the live state written.
    fn prepare(&self, mut def: Pool) -> Result<(Pool, BTreeMap<String, super::Vol>), RemoteError> {
        check_dir(&def.target.path)?;
        fill_sizes(&mut def)?;
        let vols = volumes::scan(Path::new(&def.target.path));
        write_atomic(&self.state_file(&def.name), def.to_xml().as_bytes())
            .map_err(|e| write_failed(&e))?;
        Ok((def, vols))
    }

    /// STORAGE_POOL_CREATE: starts a defined pool.
    pub fn start(&self, h: &NonnullStoragePool, flags: u32) -> Result<(), RemoteError> {
        let known =
            create::WITH_BUILD | create::WITH_BUILD_OVERWRITE | create::WITH_BUILD_NO_OVERWRITE;
        check_flags(flags, known, "storagePoolCreate")?;
        let job = self.job_of(h)?;
        let _job = hold(&job);
        let def = {
            let reg = self.reg();
            let e = reg.resolve(h)?;
            if e.is_active() {
                return Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is already active",
                    e.name
                )));
            }
            e.def().clone()
        };
        if flags != 0 {
            build_dir(&def)?;
        }
        let (live, vols) = self.prepare(def)?;
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(h)?;
            e.live = Some(live);
            e.volumes = vols;
            tracing::info!(pool = %e.name, volumes = e.volumes.len(), "storage pool started");
            e.handle()
        };
        self.events.pool_lifecycle(&handle, event::STARTED, 0);
        Ok(())
    }

    /// STORAGE_POOL_BUILD: makes the directory (mode 0711 unless the
    /// definition says).
    pub fn build(&self, h: &NonnullStoragePool, flags: u32) -> Result<(), RemoteError> {
        check_flags(
            flags,
            build::OVERWRITE | build::NO_OVERWRITE,
            "storagePoolBuild",
        )?;
        if flags & build::OVERWRITE != 0 && flags & build::NO_OVERWRITE != 0 {
            return Err(RemoteError::invalid_arg(
                "Overwrite and no overwrite flags are mutually exclusive",
            ));
        }
        let def = {
            let reg = self.reg();
            let e = reg.resolve(h)?;
            if e.is_active() {
                return Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is already active",
                    e.name
                )));
            }
            e.def().clone()
        };
        build_dir(&def)
    }

    /// STORAGE_POOL_DESTROY.
    pub fn destroy(&self, h: &NonnullStoragePool) -> Result<(), RemoteError> {
        let job = self.job_of(h)?;
        let _job = hold(&job);
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(h)?;
            e.check_active()?;
            let name = e.name.clone();
            let _ = std::fs::remove_file(self.state_file(&name));
            e.live = None;
            e.volumes.clear();
            let handle = e.handle();
            if !e.is_persistent() {
                reg.pools.remove(&name);
            }
            handle
        };
        tracing::info!(pool = %handle.name, "storage pool destroyed");
        self.events.pool_lifecycle(&handle, event::STOPPED, 0);
        Ok(())
    }

    /// STORAGE_POOL_DELETE: removes the (empty) directory of an inactive
    /// pool.
    pub fn delete(&self, h: &NonnullStoragePool, flags: u32) -> Result<(), RemoteError> {
        check_flags(flags, 0, "storagePoolDelete")?;
        let job = self.job_of(h)?;
        let _job = hold(&job);
        let (handle, dir) = {
            let reg = self.reg();
            let e = reg.resolve(h)?;
            if e.is_active() {
                return Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is still active",
                    e.name
                )));
            }
            (e.handle(), e.def().target.path.clone())
        };
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(system_error(&format!(
                    "failed to remove pool '{dir}': {}",
                    os_text(&e)
                )))
            }
        }
        self.events.pool_lifecycle(&handle, event::DELETED, 0);
        Ok(())
    }

    /// STORAGE_POOL_UNDEFINE.
    pub fn undefine(&self, h: &NonnullStoragePool) -> Result<(), RemoteError> {
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(h)?;
            if !e.is_persistent() {
                return Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is not persistent",
                    e.name
                )));
            }
            if e.is_active() {
                return Err(RemoteError::operation_invalid(&format!(
                    "storage pool '{}' is still active",
                    e.name
                )));
            }
            let name = e.name.clone();
            self.store.remove(&name).map_err(|err| {
                RemoteError::operation_failed(&format!("cannot remove the definition: {err}"))
            })?;
            let handle = e.handle();
            reg.pools.remove(&name);
            handle
        };
        tracing::info!(pool = %handle.name, "storage pool undefined");
        self.events.pool_lifecycle(&handle, event::UNDEFINED, 0);
        Ok(())
    }

    /// STORAGE_POOL_REFRESH: sizes and volumes read again.
    pub fn refresh(&self, h: &NonnullStoragePool, flags: u32) -> Result<(), RemoteError> {
        check_flags(flags, 0, "storagePoolRefresh")?;
        let job = self.job_of(h)?;
        let _job = hold(&job);
        let mut def = {
            let reg = self.reg();
            let e = reg.resolve(h)?;
            e.check_active()?;
            e.def().clone()
        };
        fill_sizes(&mut def)?;
        let vols = volumes::scan(Path::new(&def.target.path));
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(h)?;
            e.live = Some(def);
            e.volumes = vols;
            e.handle()
        };
        self.events.pool_refresh(&handle);
        Ok(())
    }

    /// Sizes re-read after a volume changed (libvirt updates its pool's
    /// allocation on every volume operation).
    pub fn update_sizes(&self, name: &str) {
        let mut reg = self.reg();
        if let Some(live) = reg.pools.get_mut(name).and_then(|e| e.live.as_mut()) {
            let _ = fill_sizes(live);
        }
    }

    /// STORAGE_POOL_SET_AUTOSTART.
    pub fn set_autostart(&self, h: &NonnullStoragePool, on: bool) -> Result<(), RemoteError> {
        let mut reg = self.reg();
        let e = reg.resolve_mut(h)?;
        if !e.is_persistent() {
            return Err(RemoteError::internal(
                "cannot set autostart for transient pool",
            ));
        }
        self.store.set_autostart(&e.name, on).map_err(|err| {
            system_error(&format!(
                "cannot change autostart of pool '{}': {err}",
                e.name
            ))
        })?;
        e.autostart = on;
        Ok(())
    }

    /// The pools CONNECT_LIST_ALL_STORAGE_POOLS's `flags` select, in name
    /// order.
    pub fn list(&self, flags: u32) -> Result<Vec<NonnullStoragePool>, RemoteError> {
        check_flags(flags, list::ALL, "storageConnectListAllStoragePools")?;
        let pick = |on: u32, off: u32, v: bool| {
            let f = flags & (on | off);
            f == 0 || f == (on | off) || (v && f & on != 0) || (!v && f & off != 0)
        };
        let types = flags & !(list::DIR - 1);
        Ok(self
            .reg()
            .pools
            .values()
            .filter(|e| {
                pick(list::ACTIVE, list::INACTIVE, e.is_active())
                    && pick(list::PERSISTENT, list::TRANSIENT, e.is_persistent())
                    && pick(list::AUTOSTART, list::NO_AUTOSTART, e.autostart)
                    && (types == 0 || {
                        let bit = list::TYPE_BITS
                            .iter()
                            .position(|t| *t == e.def().kind.name())
                            .map(|i| list::DIR << i)
                            .unwrap_or(0);
                        types & bit != 0
                    })
            })
            .map(PoolEntry::handle)
            .collect())
    }
}

/// Makes a dir pool's directory; an existing one keeps its contents (and,
/// as with libvirt, a path that is not a directory is left for start to
/// refuse).
fn build_dir(def: &Pool) -> Result<(), RemoteError> {
    let path = Path::new(&def.target.path);
    let perms = def.target.permissions.as_ref();
    let mode = perms.and_then(|p| p.mode).unwrap_or(DEFAULT_DIR_MODE);
    if path.exists() {
        if path.is_dir() {
            if let Some(m) = perms.and_then(|p| p.mode) {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(
                    |e| {
                        system_error(&format!(
                            "cannot set mode of '{}' to {m:04o}: {}",
                            path.display(),
                            os_text(&e)
                        ))
                    },
                )?;
            }
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| {
            system_error(&format!(
                "cannot create path '{}': {}",
                path.display(),
                os_text(&e)
            ))
        })?;
    // The umask may have taken bits away.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    Ok(())
}

/// `pool-info`'s numbers: state and sizes.
pub fn info(e: &PoolEntry) -> (u8, u64, u64, u64) {
    use rvirt_remote::consts::storage::pool_state;
    match &e.live {
        Some(l) => (pool_state::RUNNING, l.capacity, l.allocation, l.available),
        None => (pool_state::INACTIVE, 0, 0, 0),
    }
}

/// Finds a pool by its target directory (STORAGE_POOL_LOOKUP_BY_TARGET_PATH).
pub fn by_target_path<'a>(reg: &'a Registry, path: &str) -> Result<&'a PoolEntry, RemoteError> {
    let clean = Path::new(path);
    reg.pools
        .values()
        .find(|e| Path::new(&e.def().target.path) == clean)
        .ok_or_else(|| {
            no_pool(&format!(
                "no storage pool with matching target path '{path}'"
            ))
        })
}
