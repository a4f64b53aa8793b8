//! The storage group of the procedure table: each procedure to the storage
//! driver's operation.

use rvirt_remote::calls::*;
use rvirt_remote::consts::storage::{vol_type, GET_PHYSICAL, XML_INACTIVE};
use rvirt_remote::procedures::StorageCalls;
use rvirt_remote::RemoteError;

use super::pools::{by_target_path, info};
use super::{check_flags, no_vol, volumes, PoolEntry, StorageDriver};
use crate::server::events::Kind;
use crate::server::router::Call;

fn pool_ret(e: &PoolEntry) -> StoragePoolRet {
    StoragePoolRet { pool: e.handle() }
}

/// The capabilities `virsh pool-capabilities` shows: the dir backend, with
/// the volume formats rvirt makes; every other type unsupported.
fn capabilities() -> String {
    let mut out = String::from("<storagepoolCapabilities>\n");
    for t in rvirt_domain::storage::POOL_TYPES {
        if *t == "dir" {
            out.push_str(
                "  <pool type='dir' supported='yes'>\n    <volOptions>\n      <defaultFormat type='raw'/>\n      <enum name='targetFormatType'>\n        <value>raw</value>\n        <value>qcow2</value>\n      </enum>\n    </volOptions>\n  </pool>\n",
            );
        } else {
            out.push_str(&format!("  <pool type='{t}' supported='no'>\n  </pool>\n"));
        }
    }
    out.push_str("</storagepoolCapabilities>\n");
    out
}

impl<'a> StorageCalls<Call<'a>> for StorageDriver {
    // ---- Pool lists and lookups ----

    fn connect_list_all_storage_pools(
        &self,
        _cx: &Call<'a>,
        a: ConnectListAllArgs,
    ) -> Result<ConnectListAllStoragePoolsRet, RemoteError> {
        let pools = self.list(a.flags)?;
        let ret = pools.len() as u32;
        Ok(ConnectListAllStoragePoolsRet {
            pools: if a.need_results != 0 {
                pools
            } else {
                Vec::new()
            },
            ret,
        })
    }

    fn connect_num_of_storage_pools(&self, _cx: &Call<'a>, _a: ()) -> Result<NumRet, RemoteError> {
        let n = self.reg().pools.values().filter(|p| p.is_active()).count();
        Ok(NumRet { num: n as i32 })
    }

    fn connect_list_storage_pools(
        &self,
        _cx: &Call<'a>,
        a: ConnectListStoragePoolsArgs,
    ) -> Result<ConnectListStoragePoolsRet, RemoteError> {
        let max = a.maxnames.max(0) as usize;
        let names = self
            .reg()
            .pools
            .values()
            .filter(|p| p.is_active())
            .map(|p| p.name.clone())
            .take(max)
            .collect();
        Ok(ConnectListStoragePoolsRet { names })
    }

    fn connect_num_of_defined_storage_pools(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<NumRet, RemoteError> {
        let n = self.reg().pools.values().filter(|p| !p.is_active()).count();
        Ok(NumRet { num: n as i32 })
    }

    fn connect_list_defined_storage_pools(
        &self,
        _cx: &Call<'a>,
        a: ConnectListStoragePoolsArgs,
    ) -> Result<ConnectListStoragePoolsRet, RemoteError> {
        let max = a.maxnames.max(0) as usize;
        let names = self
            .reg()
            .pools
            .values()
            .filter(|p| !p.is_active())
            .map(|p| p.name.clone())
            .take(max)
            .collect();
        Ok(ConnectListStoragePoolsRet { names })
    }

    fn storage_pool_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(pool_ret(self.reg().by_name(&a.name)?))
    }

    fn storage_pool_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: UuidArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(pool_ret(self.reg().by_uuid(&a.uuid)?))
    }

    fn storage_pool_lookup_by_volume(
        &self,
        _cx: &Call<'a>,
        a: StorageVolArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(pool_ret(self.reg().by_name(&a.vol.pool)?))
    }

    fn storage_pool_lookup_by_target_path(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolLookupByTargetPathArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(pool_ret(by_target_path(&self.reg(), &a.path)?))
    }

    fn connect_get_storage_pool_capabilities(
        &self,
        _cx: &Call<'a>,
        a: ConnectGetStoragePoolCapabilitiesArgs,
    ) -> Result<ConnectGetStoragePoolCapabilitiesRet, RemoteError> {
        check_flags(a.flags, 0, "storageConnectGetStoragePoolCapabilities")?;
        Ok(ConnectGetStoragePoolCapabilitiesRet {
            capabilities: capabilities(),
        })
    }

    // ---- Pool lifecycle ----

    fn storage_pool_define_xml(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolXmlArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(StoragePoolRet {
            pool: self.define(&a.xml, a.flags)?,
        })
    }

    fn storage_pool_create_xml(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolXmlArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Ok(StoragePoolRet {
            pool: self.create_xml(&a.xml, a.flags)?,
        })
    }

    fn storage_pool_create(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.start(&a.pool, a.flags)
    }

    fn storage_pool_build(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.build(&a.pool, a.flags)
    }

    fn storage_pool_destroy(&self, _cx: &Call<'a>, a: StoragePoolArgs) -> Result<(), RemoteError> {
        self.destroy(&a.pool)
    }

    fn storage_pool_delete(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.delete(&a.pool, a.flags)
    }

    fn storage_pool_undefine(&self, _cx: &Call<'a>, a: StoragePoolArgs) -> Result<(), RemoteError> {
        self.undefine(&a.pool)
    }

    fn storage_pool_refresh(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.refresh(&a.pool, a.flags)
    }

    fn storage_pool_get_autostart(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolArgs,
    ) -> Result<StoragePoolGetAutostartRet, RemoteError> {
        Ok(StoragePoolGetAutostartRet {
            autostart: i32::from(self.reg().resolve(&a.pool)?.autostart),
        })
    }

    fn storage_pool_set_autostart(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolSetAutostartArgs,
    ) -> Result<(), RemoteError> {
        self.set_autostart(&a.pool, a.autostart != 0)
    }

    // ---- Pool queries ----

    fn storage_pool_get_info(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolArgs,
    ) -> Result<StoragePoolGetInfoRet, RemoteError> {
        let (state, capacity, allocation, available) = info(self.reg().resolve(&a.pool)?);
        Ok(StoragePoolGetInfoRet {
            state,
            capacity,
            allocation,
            available,
        })
    }

    fn storage_pool_get_xml_desc(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolFlagsArgs,
    ) -> Result<XmlRet, RemoteError> {
        check_flags(a.flags, XML_INACTIVE, "storagePoolGetXMLDesc")?;
        let reg = self.reg();
        let e = reg.resolve(&a.pool)?;
        let def = match (&e.config, a.flags & XML_INACTIVE != 0) {
            (Some(c), true) => c,
            _ => e.def(),
        };
        Ok(XmlRet { xml: def.to_xml() })
    }

    fn storage_pool_is_active(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolArgs,
    ) -> Result<StoragePoolIsActiveRet, RemoteError> {
        Ok(StoragePoolIsActiveRet {
            active: i32::from(self.reg().resolve(&a.pool)?.is_active()),
        })
    }

    fn storage_pool_is_persistent(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolArgs,
    ) -> Result<StoragePoolIsPersistentRet, RemoteError> {
        Ok(StoragePoolIsPersistentRet {
            persistent: i32::from(self.reg().resolve(&a.pool)?.is_persistent()),
        })
    }

    fn storage_pool_num_of_volumes(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolArgs,
    ) -> Result<NumRet, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(&a.pool)?;
        e.check_active()?;
        Ok(NumRet {
            num: e.volumes.len() as i32,
        })
    }

    fn storage_pool_list_volumes(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolListVolumesArgs,
    ) -> Result<StoragePoolListVolumesRet, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(&a.pool)?;
        e.check_active()?;
        Ok(StoragePoolListVolumesRet {
            names: e
                .volumes
                .keys()
                .take(a.maxnames.max(0) as usize)
                .cloned()
                .collect(),
        })
    }

    fn storage_pool_list_all_volumes(
        &self,
        _cx: &Call<'a>,
        a: StoragePoolListAllVolumesArgs,
    ) -> Result<StoragePoolListAllVolumesRet, RemoteError> {
        check_flags(a.flags, 0, "storagePoolListAllVolumes")?;
        let reg = self.reg();
        let e = reg.resolve(&a.pool)?;
        e.check_active()?;
        let ret = e.volumes.len() as u32;
        let vols = if a.need_results != 0 {
            e.volumes.values().map(|v| e.vol_handle(v)).collect()
        } else {
            Vec::new()
        };
        Ok(StoragePoolListAllVolumesRet { vols, ret })
    }

    fn connect_storage_pool_event_register_any(
        &self,
        cx: &Call<'a>,
        a: ConnectStoragePoolEventRegisterAnyArgs,
    ) -> Result<CallbackIdRet, RemoteError> {
        if !(0..=1).contains(&a.event_id) {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported event ID {}",
                a.event_id
            )));
        }
        let only = match &a.pool {
            Some(p) => Some(self.reg().resolve(p)?.uuid),
            None => None,
        };
        let id = self
            .events
            .register_kind(&cx.client.sub, Kind::StoragePool, a.event_id, only);
        Ok(CallbackIdRet { callback_id: id })
    }

    fn connect_storage_pool_event_deregister_any(
        &self,
        cx: &Call<'a>,
        a: CallbackIdArgs,
    ) -> Result<(), RemoteError> {
        if self
            .events
            .deregister_kind(&cx.client.sub, Kind::StoragePool, a.callback_id)
        {
            Ok(())
        } else {
            Err(RemoteError::invalid_arg(&format!(
                "could not find event callback {} for deletion",
                a.callback_id
            )))
        }
    }

    // ---- Volume lookups ----

    fn storage_vol_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByNameArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(&a.pool)?;
        e.check_active()?;
        let v = e
            .volumes
            .get(&a.name)
            .ok_or_else(|| no_vol(&format!("no storage vol with matching name '{}'", a.name)))?;
        Ok(StorageVolRet {
            vol: e.vol_handle(v),
        })
    }

    fn storage_vol_lookup_by_key(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByKeyArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        let reg = self.reg();
        let (e, v) = reg
            .by_key(&a.key)
            .ok_or_else(|| no_vol(&format!("no storage vol with matching key {}", a.key)))?;
        Ok(StorageVolRet {
            vol: e.vol_handle(v),
        })
    }

    fn storage_vol_lookup_by_path(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByPathArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        // A path in a pool's directory under another spelling (`//`,
        // `./`, a trailing slash) is the same volume, as for libvirt.
        let clean: std::path::PathBuf = std::path::Path::new(&a.path).components().collect();
        let reg = self.reg();
        let (e, v) = reg
            .by_key(&clean.to_string_lossy())
            .ok_or_else(|| no_vol(&format!("no storage vol with matching path '{}'", a.path)))?;
        Ok(StorageVolRet {
            vol: e.vol_handle(v),
        })
    }

    // ---- Volume operations ----

    fn storage_vol_create_xml(
        &self,
        _cx: &Call<'a>,
        a: StorageVolCreateXmlArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        Ok(StorageVolRet {
            vol: self.create_volume(&a.pool, &a.xml, None, a.flags)?,
        })
    }

    fn storage_vol_create_xml_from(
        &self,
        _cx: &Call<'a>,
        a: StorageVolCreateXmlFromArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        Ok(StorageVolRet {
            vol: self.create_volume(&a.pool, &a.xml, Some(&a.clonevol), a.flags)?,
        })
    }

    fn storage_vol_delete(
        &self,
        _cx: &Call<'a>,
        a: StorageVolFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.delete_volume(&a.vol, a.flags)
    }

    fn storage_vol_wipe(&self, _cx: &Call<'a>, a: StorageVolFlagsArgs) -> Result<(), RemoteError> {
        self.wipe_volume(&a.vol, 0, a.flags)
    }

    fn storage_vol_wipe_pattern(
        &self,
        _cx: &Call<'a>,
        a: StorageVolWipePatternArgs,
    ) -> Result<(), RemoteError> {
        self.wipe_volume(&a.vol, a.algorithm, a.flags)
    }

    fn storage_vol_resize(
        &self,
        _cx: &Call<'a>,
        a: StorageVolResizeArgs,
    ) -> Result<(), RemoteError> {
        self.resize_volume(&a.vol, a.capacity, a.flags)
    }

    fn storage_vol_get_info(
        &self,
        _cx: &Call<'a>,
        a: StorageVolArgs,
    ) -> Result<StorageVolGetInfoRet, RemoteError> {
        let v = self.reprobe(&a.vol)?;
        Ok(StorageVolGetInfoRet {
            type_: v.kind,
            capacity: v.capacity,
            allocation: v.allocation,
        })
    }

    fn storage_vol_get_info_flags(
        &self,
        _cx: &Call<'a>,
        a: StorageVolFlagsArgs,
    ) -> Result<StorageVolGetInfoRet, RemoteError> {
        check_flags(a.flags, GET_PHYSICAL, "storageVolGetInfoFlags")?;
        let v = self.reprobe(&a.vol)?;
        Ok(StorageVolGetInfoRet {
            type_: v.kind,
            capacity: v.capacity,
            allocation: if a.flags & GET_PHYSICAL != 0 && v.kind == vol_type::FILE {
                v.physical
            } else {
                v.allocation
            },
        })
    }

    fn storage_vol_get_xml_desc(
        &self,
        _cx: &Call<'a>,
        a: StorageVolFlagsArgs,
    ) -> Result<XmlRet, RemoteError> {
        check_flags(a.flags, 0, "storageVolGetXMLDesc")?;
        let v = self.reprobe(&a.vol)?;
        Ok(XmlRet {
            xml: volumes::to_xml(&v),
        })
    }

    fn storage_vol_get_path(
        &self,
        _cx: &Call<'a>,
        a: StorageVolArgs,
    ) -> Result<StorageVolGetPathRet, RemoteError> {
        let reg = self.reg();
        let (_, v) = reg.resolve_vol(&a.vol)?;
        Ok(StorageVolGetPathRet { name: v.key() })
    }

    fn storage_vol_upload(
        &self,
        cx: &Call<'a>,
        a: StorageVolStreamArgs,
    ) -> Result<(), RemoteError> {
        self.arc().upload(cx, &a)
    }

    fn storage_vol_download(
        &self,
        cx: &Call<'a>,
        a: StorageVolStreamArgs,
    ) -> Result<(), RemoteError> {
        self.download(cx, &a)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_name_every_type() {
        let c = super::capabilities();
        assert!(c.contains("<pool type='dir' supported='yes'>"));
        assert!(c.contains("<pool type='netfs' supported='no'>"));
    }
}
