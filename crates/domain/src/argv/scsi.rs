//! virtio-scsi: `<controller type='scsi' model='virtio-scsi'>` and the
//! `<disk bus='scsi'>` disks and CD-ROMs on it, as libvirt 9.0 derives
//! them: the controller among the controllers (after the PCI ones,
//! before SATA and virtio-serial), each LUN as `scsi-hd`/`scsi-cd` with
//! `bus=ALIAS.0`, `channel`, `scsi-id`, `lun` from its drive address and
//! `device_id=drive-ALIAS`; `<driver queues='N'/>` as the controller's
//! `num_queues` (without it rvirt-vmm, as QEMU, gives one request queue
//! per vCPU). Other SCSI controller models (libvirt's
//! implicit `lsilogic` on x86) are not emulated: their disks are refused.

use serde::Serialize;

use super::blockdev;
use super::pci::PciPlace;
use super::Builder;
use crate::model::{Disk, Domain, OtherDevice};

/// The model rvirt-vmm emulates.
pub const MODEL: &str = "virtio-scsi";

/// The most request queues rvirt-vmm's controller has (its MSI-X table
/// holds 128 vectors).
const QUEUES_MAX: u32 = 125;

/// The controller's `-device` on PCI, keys in libvirt's order
/// (qemuBuildControllerSCSIDevProps: driver, id, num_queues, address).
#[derive(Serialize)]
struct Controller<'a> {
    driver: String,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_queues: Option<u32>,
    #[serde(flatten)]
    pci: PciPlace,
}

/// A LUN's `-device`, keys in libvirt's order.
#[derive(Serialize)]
struct ScsiDevice<'a> {
    driver: &'static str,
    bus: String,
    channel: u32,
    #[serde(rename = "scsi-id")]
    scsi_id: u32,
    lun: u32,
    device_id: String,
    #[serde(rename = "share-rw", skip_serializing_if = "std::ops::Not::not")]
    share_rw: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<&'a str>,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootindex: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<&'a str>,
    #[serde(rename = "write-cache", skip_serializing_if = "Option::is_none")]
    write_cache: Option<&'a str>,
}

fn scsi_controllers(dom: &Domain) -> impl Iterator<Item = &OtherDevice> {
    dom.devices
        .others
        .iter()
        .filter(|o| o.kind() == "controller" && o.dev_type() == Some("scsi"))
}

fn index(o: &OtherDevice) -> u32 {
    o.element
        .attr("index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

fn alias(o: &OtherDevice) -> String {
    o.element
        .child("alias")
        .and_then(|a| a.attr("name"))
        .map_or_else(|| format!("scsi{}", index(o)), str::to_string)
}

/// The virtio-scsi controllers' `-device`s.
pub(super) fn controllers(dom: &Domain, b: &mut Builder) {
    for o in scsi_controllers(dom).filter(|o| o.model() == Some(MODEL)) {
        let what = "controller (virtio-scsi)";
        let driver = o.element.child("driver");
        // libvirt leaves queues='0' out, as it leaves out no attribute.
        let queues = match driver.and_then(|d| d.attr("queues")) {
            None => None,
            Some(q) => match q.parse::<u32>() {
                Ok(0) => None,
                Ok(n) if n <= QUEUES_MAX => Some(n),
                Ok(_) => {
                    b.refuse(
                        o.line(),
                        what,
                        format!("queues='{q}': at most {QUEUES_MAX} request queues"),
                    );
                    continue;
                }
                Err(_) => {
                    b.refuse(o.line(), what, format!("queues='{q}' is not a number"));
                    continue;
                }
            },
        };
        if driver.and_then(|d| d.attr("iothread")).is_some() {
            b.refuse(o.line(), what, "iothreads are not supported".to_string());
            continue;
        }
        let alias = alias(o);
        let place = super::pci::place(dom, o.element.child("address"), o.line(), what, b);
        let arg = match place {
            Some(pci) => blockdev::json(&Controller {
                driver: super::pci::driver(MODEL, &Some(pci.clone())),
                id: &alias,
                num_queues: queues,
                pci,
            }),
            None => {
                let mut s = super::devices::virtio_device(MODEL, &alias, None, None);
                if let Some(n) = queues {
                    s.push_str(&format!(",num_queues={n}"));
                }
                s
            }
        };
        b.opt("-device", arg);
    }
}

/// Where a disk sits: its controller's bus name and its drive address,
/// or why it cannot.
pub(super) fn target(dom: &Domain, d: &Disk) -> Result<(String, [u32; 3]), String> {
    let a = d
        .info
        .address
        .as_ref()
        .filter(|a| a.attr("type") == Some("drive"));
    let n = |k: &str| {
        a.and_then(|a| a.attr(k))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (c, bus, target, unit) = (n("controller"), n("bus"), n("target"), n("unit"));
    let Some(ctl) = scsi_controllers(dom).find(|o| index(o) == c) else {
        return Err(format!("SCSI controller {c} does not exist"));
    };
    match ctl.model() {
        Some(MODEL) => {}
        m => {
            return Err(format!(
                "SCSI controller {c} (model '{}') is not emulated: use model='virtio-scsi'",
                m.unwrap_or("lsilogic")
            ))
        }
    }
    // virtio-scsi's limits (QEMU's VIRTIO_SCSI_MAX_*).
    if bus != 0 || target > 255 || unit > 16383 {
        return Err(format!(
            "drive address {c}:{bus}:{target}:{unit} is outside virtio-scsi's channel 0, targets 0-255, LUNs 0-16383"
        ));
    }
    Ok((format!("{}.0", alias(ctl)), [bus, target, unit]))
}

/// What a LUN's `-device` carries besides its address.
pub(super) struct Lun<'a> {
    pub(super) drive: Option<&'a str>,
    pub(super) id: &'a str,
    pub(super) bootindex: Option<u32>,
    pub(super) write_cache: Option<&'a str>,
}

/// A disk's or CD-ROM's `-device` on its controller.
pub(super) fn device(dom: &Domain, d: &Disk, lun: Lun<'_>, b: &mut Builder) {
    let what = format!("disk '{}'", d.target_dev);
    let (bus, [channel, scsi_id, unit]) = match target(dom, d) {
        Ok(t) => t,
        Err(why) => return b.refuse(d.line.0, what, why),
    };
    b.opt(
        "-device",
        blockdev::json(&ScsiDevice {
            driver: if d.device == "cdrom" {
                "scsi-cd"
            } else {
                "scsi-hd"
            },
            bus,
            channel,
            scsi_id,
            lun: unit,
            device_id: format!("drive-{}", lun.id),
            share_rw: d.shareable,
            drive: lun.drive,
            id: lun.id,
            bootindex: lun.bootindex,
            serial: d.serial.as_deref(),
            write_cache: lun.write_cache,
        }),
    );
}
