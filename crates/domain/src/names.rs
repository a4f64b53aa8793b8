//! Device names and drive addresses computed the way libvirt computes them,
//! so that ids on the command line (and in monitor replies) are the ones
//! libvirt users know.

use crate::model::Disk;
use crate::xml::Element;

/// Index of a disk from its target name: `vda` → 0, `sdb` → 1, `hdaa` → 26.
pub fn disk_index(dev: &str) -> Option<u32> {
    let letters = ["xvd", "ubd", "hd", "vd", "sd", "fd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if letters.is_empty() || letters.len() > 6 {
        return None;
    }
    let mut idx: u32 = 0;
    for (i, c) in letters.bytes().enumerate() {
        if !c.is_ascii_lowercase() {
            return None;
        }
        let digit = u32::from(c - b'a');
        idx = if i == 0 {
            digit
        } else {
            (idx + 1) * 26 + digit
        };
    }
    Some(idx)
}

/// The drive address libvirt assigns to a disk on a controller bus:
/// (controller, bus, target, unit).
pub fn drive_address(bus: &str, idx: u32) -> Option<(u32, u32, u32, u32)> {
    Some(match bus {
        "ide" => (idx / 4, (idx % 4) / 2, 0, idx % 2),
        "sata" => (idx / 6, 0, 0, idx % 6),
        "scsi" => (idx / 7, 0, 0, idx % 7),
        "fdc" => (idx / 2, 0, 0, idx % 2),
        _ => return None,
    })
}

pub fn drive_address_element(addr: (u32, u32, u32, u32)) -> Element {
    let (c, b, t, u) = addr;
    Element::new("address")
        .with_attr("type", Some("drive"))
        .with_attr("controller", Some(c.to_string()))
        .with_attr("bus", Some(b.to_string()))
        .with_attr("target", Some(t.to_string()))
        .with_attr("unit", Some(u.to_string()))
}

/// Reads back a `type='drive'` address.
pub(crate) fn read_drive_address(a: &Element) -> Option<(u32, u32, u32, u32)> {
    if a.attr("type") != Some("drive") {
        return None;
    }
    let n = |k: &str| a.attr(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some((n("controller"), n("bus"), n("target"), n("unit")))
}

/// The alias libvirt gives a disk: `virtio-disk0`, `ide0-0-0`, `sata0-0-1`,
/// `scsi0-0-0-0`, `fdc0-0-0`, `usb-disk0`.
pub fn disk_alias(d: &Disk) -> String {
    let bus = d.bus();
    let idx = disk_index(&d.target_dev).unwrap_or(0);
    let addr = d
        .info
        .address
        .as_ref()
        .and_then(read_drive_address)
        .or_else(|| drive_address(bus, idx));
    match (bus, addr) {
        ("scsi", Some((c, b, t, u))) => format!("scsi{c}-{b}-{t}-{u}"),
        ("ide" | "sata" | "fdc", Some((c, b, _, u))) => format!("{bus}{c}-{b}-{u}"),
        ("usb", _) => format!("usb-disk{idx}"),
        _ => format!("{bus}-disk{idx}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_indices_follow_libvirt() {
        assert_eq!(disk_index("vda"), Some(0));
        assert_eq!(disk_index("sdz"), Some(25));
        assert_eq!(disk_index("hdaa"), Some(26));
        assert_eq!(disk_index("xvdb"), Some(1));
        assert_eq!(disk_index("vd"), None);
        assert_eq!(disk_index("vd1"), None);
        assert_eq!(disk_index("nvme0n1"), None);
    }

    #[test]
    fn drive_addresses_follow_libvirt() {
        assert_eq!(drive_address("ide", 2), Some((0, 1, 0, 0)));
        assert_eq!(drive_address("ide", 3), Some((0, 1, 0, 1)));
        assert_eq!(drive_address("sata", 7), Some((1, 0, 0, 1)));
        assert_eq!(drive_address("virtio", 0), None);
    }
}
