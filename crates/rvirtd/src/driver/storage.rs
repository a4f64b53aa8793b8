//! The storage driver's place. rvirtd has no storage pools yet, so it
//! answers as libvirt's storage driver does with none defined: empty lists,
//! and lookups that fail with VIR_ERR_NO_STORAGE_POOL or
//! VIR_ERR_NO_STORAGE_VOL (virt-install and virt-manager look a disk path
//! up as a volume and go on when it is not one). The pools of issue 15 go
//! here, each kept in a `store::Store`.

use rvirt_remote::calls::{
    ConnectListAllArgs, ConnectListAllStoragePoolsRet, NameArgs, StoragePoolRet,
    StorageVolLookupByKeyArgs, StorageVolLookupByNameArgs, StorageVolLookupByPathArgs,
    StorageVolRet, UuidArgs,
};
use rvirt_remote::error::{code, from};
use rvirt_remote::procedures::StorageCalls;
use rvirt_remote::RemoteError;

use crate::server::router::Call;

/// The storage pools (none yet).
#[derive(Debug, Default)]
pub struct StorageDriver;

fn no_pool(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_STORAGE_POOL, from::STORAGE, Some(detail))
}

fn no_vol(detail: &str) -> RemoteError {
    RemoteError::new(code::NO_STORAGE_VOL, from::STORAGE, Some(detail))
}

impl<'a> StorageCalls<Call<'a>> for StorageDriver {
    fn connect_list_all_storage_pools(
        &self,
        _cx: &Call<'a>,
        _a: ConnectListAllArgs,
    ) -> Result<ConnectListAllStoragePoolsRet, RemoteError> {
        Ok(ConnectListAllStoragePoolsRet {
            pools: Vec::new(),
            ret: 0,
        })
    }

    fn storage_pool_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: NameArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Err(no_pool(&format!(
            "no storage pool with matching name '{}'",
            a.name
        )))
    }

    fn storage_pool_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: UuidArgs,
    ) -> Result<StoragePoolRet, RemoteError> {
        Err(no_pool(&format!(
            "no storage pool with matching uuid '{}'",
            a.uuid
        )))
    }

    fn storage_vol_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByNameArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        // The pool a volume is looked up in cannot exist yet.
        Err(no_pool(&format!(
            "no storage pool with matching uuid '{}' ({})",
            a.pool.uuid, a.pool.name
        )))
    }

    fn storage_vol_lookup_by_key(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByKeyArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        Err(no_vol(&format!(
            "no storage vol with matching key {}",
            a.key
        )))
    }

    fn storage_vol_lookup_by_path(
        &self,
        _cx: &Call<'a>,
        a: StorageVolLookupByPathArgs,
    ) -> Result<StorageVolRet, RemoteError> {
        Err(no_vol(&format!(
            "no storage vol with matching path '{}'",
            a.path
        )))
    }
}
