//! The JSON objects of a disk: its storage node, its format node and its
//! guest device, with keys in libvirt's order.

use serde::Serialize;

/// `cache` of both block nodes.
#[derive(Serialize, Clone, Copy)]
pub struct Cache {
    pub direct: bool,
    #[serde(rename = "no-flush")]
    pub no_flush: bool,
}

/// Host cache and guest write cache for a libvirt cache mode.
pub fn cache_mode(mode: &str) -> Option<(Cache, bool)> {
    let (direct, no_flush, write_cache) = match mode {
        "none" => (true, false, true),
        "writeback" => (false, false, true),
        "writethrough" => (false, false, false),
        "directsync" => (true, false, false),
        "unsafe" => (false, true, true),
        _ => return None,
    };
    Some((Cache { direct, no_flush }, write_cache))
}

/// `-blockdev` for the host file or device.
#[derive(Serialize)]
pub struct StorageNode<'a> {
    pub driver: &'a str,
    pub filename: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aio: Option<&'a str>,
    #[serde(rename = "node-name")]
    pub node_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    #[serde(rename = "auto-read-only")]
    pub auto_read_only: bool,
    pub discard: &'a str,
}

/// `-blockdev` for the image format on top of the storage node.
#[derive(Serialize)]
pub struct FormatNode<'a> {
    #[serde(rename = "node-name")]
    pub node_name: &'a str,
    #[serde(rename = "read-only")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    #[serde(rename = "detect-zeroes", skip_serializing_if = "Option::is_none")]
    pub detect_zeroes: Option<&'a str>,
    pub driver: &'a str,
    pub file: &'a str,
    /// Absent: the image's header names the backing image (the VMM opens
    /// it only if the header names its format too); `null`: none; a
    /// node name: that format node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing: Option<Option<&'a str>>,
}

/// `-device` for the guest's disk.
#[derive(Serialize)]
pub struct BlockDevice<'a> {
    pub driver: &'a str,
    #[serde(flatten)]
    pub pci: Option<super::pci::PciPlace>,
    /// An ATA drive's port (SATA, IDE).
    #[serde(flatten)]
    pub ata: Option<DrivePlace>,
    #[serde(rename = "share-rw", skip_serializing_if = "std::ops::Not::not")]
    pub share_rw: bool,
    /// None: a CD-ROM with no medium.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drive: Option<&'a str>,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootindex: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<&'a str>,
    #[serde(rename = "write-cache", skip_serializing_if = "Option::is_none")]
    pub write_cache: Option<&'a str>,
}

/// Where an ATA drive plugs in, as libvirt writes its drive address:
/// `"bus":"ide.N"` (port N of q35's built-in AHCI), `"bus":"sataC.N"`
/// (an `ahci` device) or `"bus":"ide.B","unit":U` (pc's IDE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrivePlace {
    pub bus: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<u32>,
}

/// The object as one JSON argument.
pub fn json(v: &impl Serialize) -> String {
    // Plain structs of strings, numbers and booleans always serialize.
    serde_json::to_string(v).unwrap_or_default()
}
