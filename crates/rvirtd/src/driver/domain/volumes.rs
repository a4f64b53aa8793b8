//! `<disk type='volume'>`: a disk named by storage pool and volume,
//! resolved through the storage driver when the domain starts, as
//! libvirt's QEMU driver does (`virDomainDiskTranslateSourcePool`). The
//! VMM gets the volume's file; the live XML keeps `<source pool=
//! volume=/>`, as libvirt's does.

use std::borrow::Cow;

use rvirt_domain::model::DiskDriver;
use rvirt_domain::xml::Element;
use rvirt_domain::Domain;
use rvirt_remote::RemoteError;

use super::DomainDriver;

impl DomainDriver {
    /// `def` with every volume disk turned into the file it names, for the
    /// VMM's command line; `def` itself when it has none.
    pub fn resolve_volumes<'d>(&self, def: &'d Domain) -> Result<Cow<'d, Domain>, RemoteError> {
        if !def.devices.disks.iter().any(|d| d.disk_type == "volume") {
            return Ok(Cow::Borrowed(def));
        }
        let mut out = def.clone();
        for d in out
            .devices
            .disks
            .iter_mut()
            .filter(|d| d.disk_type == "volume")
        {
            let src = d.source.as_ref();
            let (Some(pool), Some(vol)) = (
                src.and_then(|s| s.attr("pool")),
                src.and_then(|s| s.attr("volume")),
            ) else {
                return Err(RemoteError::xml_error(&format!(
                    "disk '{}' of type 'volume' needs a source with pool and volume",
                    d.target_dev
                )));
            };
            let (path, format) = self.storage.resolve_disk(pool, vol)?;
            d.disk_type = "file".into();
            d.source = Some(Element::new("source").with_attr("file", Some(path.to_string_lossy())));
            let drv = d.driver.get_or_insert_with(|| DiskDriver {
                name: Some("qemu".into()),
                ..Default::default()
            });
            if drv.format.is_none() {
                drv.format = Some(format);
            }
        }
        Ok(Cow::Owned(out))
    }
}
