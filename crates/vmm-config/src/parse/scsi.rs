//! `-device scsi-hd|scsi-cd` on a virtio-scsi controller's bus, as
//! libvirt 9.0 writes them for `<disk bus='scsi'>`:
//! `bus=scsi0.0,channel=0,scsi-id=N,lun=L,device_id=drive-scsi0-0-N-L,
//! drive=…,id=scsi0-0-N-L,bootindex=…`. A controller's bus is `ID.0`
//! (`scsi.0` for one without an id), and must come before its LUNs, as in
//! QEMU; without `bus=` a LUN goes on the first controller.

use crate::config::{AtaKind, ScsiLunConfig};
use crate::opts::Opts;
use crate::ConfigError;

/// The highest `scsi-id` and `lun` virtio-scsi addresses (QEMU's
/// VIRTIO_SCSI_MAX_TARGET and VIRTIO_SCSI_MAX_LUN).
const TARGET_MAX: u32 = 255;
const LUN_MAX: u32 = 16383;

/// QEMU's VIRTIO_QUEUE_MAX less the control and event queues: the most
/// request queues QEMU takes.
const QEMU_QUEUES_MAX: u32 = 1022;
/// The most request queues rvirt's device has (rvirt-virtio's
/// `scsi::MAX_REQUEST_QUEUES`: its MSI-X table holds 128 vectors).
pub(super) const QUEUES_MAX: u32 = 125;

/// A controller's `num_queues=`, checked as QEMU 7.2 checks it; None
/// for QEMU's "auto".
pub(super) fn num_queues(o: &mut Opts) -> Result<Option<u32>, ConfigError> {
    let Some(q) = o.get_u32("num_queues")? else {
        return Ok(None);
    };
    if q == 0 || q > QEMU_QUEUES_MAX {
        return Err(o.error(format!(
            "Invalid number of queues (= {q}), must be a positive integer less than {QEMU_QUEUES_MAX}."
        )));
    }
    if q > QUEUES_MAX {
        return Err(o.error(format!(
            "num_queues={q}: at most {QUEUES_MAX} request queues (128 MSI-X vectors)"
        )));
    }
    Ok(Some(q))
}

/// QEMU 7.2's "auto" request queues of a virtio-scsi-pci
/// (virtio_pci_optimal_num_queues): one per vCPU, capped by the vectors
/// and queues a function can have; rvirt's cap is lower (see
/// [`QUEUES_MAX`]). virtio-scsi-device (virtio-mmio) has one.
pub(super) fn auto_queues(cpus: u32) -> u32 {
    cpus.clamp(1, QUEUES_MAX)
}

/// A LUN before its controller and medium are looked up.
pub(super) struct LunRef {
    pub(super) kind: AtaKind,
    pub(super) drive: Option<String>,
    pub(super) bus: Option<String>,
    pub(super) target: Option<u8>,
    pub(super) lun: u16,
    pub(super) id: Option<String>,
    pub(super) bootindex: Option<u32>,
    pub(super) serial: Option<String>,
    pub(super) device_id: Option<String>,
    pub(super) write_cache: Option<bool>,
    /// How many virtio-scsi controllers came before it.
    pub(super) controllers_before: usize,
}

/// Parses `-device scsi-hd|scsi-cd,…`.
pub(super) fn lun(
    kind: AtaKind,
    o: &mut Opts,
    controllers_before: usize,
) -> Result<LunRef, ConfigError> {
    let driver = match kind {
        AtaKind::Disk => "scsi-hd",
        AtaKind::Cdrom => "scsi-cd",
    };
    let drive = o.get("drive").filter(|d| !d.is_empty());
    if kind == AtaKind::Disk && drive.is_none() {
        return Err(o.error(format!("Property '{driver}.drive' is required")));
    }
    if let Some(c) = o.get_u32("channel")? {
        if c != 0 {
            return Err(o.error(format!(
                "bad scsi device channel id ({c}): virtio-scsi has channel 0 only"
            )));
        }
    }
    let target = match o.get_u32("scsi-id")? {
        Some(t) if t > TARGET_MAX => {
            return Err(o.error(format!("bad scsi device id {t} (maximum {TARGET_MAX})")))
        }
        t => t.map(|t| t as u8),
    };
    let lun = match o.get_u32("lun")?.unwrap_or(0) {
        l if l > LUN_MAX => {
            return Err(o.error(format!("bad scsi device lun {l} (maximum {LUN_MAX})")))
        }
        l => l as u16,
    };
    let write_cache = match o.get("write-cache").as_deref() {
        None | Some("auto") => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(v) => {
            return Err(o.error(format!(
                "Parameter 'write-cache' expects 'on', 'off' or 'auto', not '{v}'"
            )))
        }
    };
    let serial = o.get("serial");
    if serial.as_ref().is_some_and(|s| s.len() > 36) {
        return Err(o.error("'serial' is longer than 36 bytes".into()));
    }
    let r = LunRef {
        kind,
        drive,
        bus: o.get("bus"),
        target,
        lun,
        id: o.get("id"),
        bootindex: o.get_u32("bootindex")?,
        serial,
        device_id: o.get("device_id"),
        write_cache,
        controllers_before,
    };
    // Identity and geometry hints that change nothing rvirt's LUNs report
    // (they keep QEMU's defaults).
    o.ignore(&[
        "vendor",
        "product",
        "ver",
        "wwn",
        "port_wwn",
        "port_index",
        "removable",
        "dpofua",
        "share-rw",
        "rerror",
        "werror",
        "logical_block_size",
        "physical_block_size",
        "discard_granularity",
        "rotation_rate",
    ]);
    Ok(r)
}

/// Where each LUN goes: (controller, target), QEMU's rules: `bus=` names a
/// controller before it; without `scsi-id` a LUN 0 takes the first target
/// with no LUN 0. `buses` are the controllers' bus names in order.
pub(super) fn place(
    luns: &[LunRef],
    buses: &[String],
) -> Result<Vec<(usize, ScsiAddr)>, ConfigError> {
    let err = |m: String| ConfigError::new("-device", m);
    let mut out: Vec<(usize, ScsiAddr)> = Vec::new();
    for l in luns {
        let driver = match l.kind {
            AtaKind::Disk => "scsi-hd",
            AtaKind::Cdrom => "scsi-cd",
        };
        let visible = &buses[..l.controllers_before];
        let c = match &l.bus {
            Some(bus) => visible
                .iter()
                .position(|b| b == bus)
                .ok_or_else(|| err(format!("Bus '{bus}' not found")))?,
            None if visible.is_empty() => {
                return Err(err(format!("No 'SCSI' bus found for device '{driver}'")))
            }
            None => 0,
        };
        let taken = |t: u8, lun: u16| {
            out.iter()
                .any(|(oc, a)| *oc == c && a.target == t && a.lun == lun)
        };
        let target = match l.target {
            Some(t) => t,
            None => (0..=TARGET_MAX as u8)
                .find(|t| !taken(*t, l.lun))
                .ok_or_else(|| err("no free target".into()))?,
        };
        if taken(target, l.lun) {
            return Err(err(format!(
                "{driver}: scsi-id {target} lun {} is already in use",
                l.lun
            )));
        }
        out.push((c, ScsiAddr { target, lun: l.lun }));
    }
    Ok(out)
}

/// A LUN's address on its controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ScsiAddr {
    pub(super) target: u8,
    pub(super) lun: u16,
}

/// The LUN's config, its medium resolved by the caller.
pub(super) fn config(
    l: &LunRef,
    a: ScsiAddr,
    disk: Option<crate::config::DiskConfig>,
) -> ScsiLunConfig {
    ScsiLunConfig {
        kind: l.kind,
        target: a.target,
        lun: a.lun,
        id: l.id.clone(),
        disk,
        bootindex: l.bootindex,
        device_id: l.device_id.clone(),
    }
}
