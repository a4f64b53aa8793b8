//! How the guest boots: direct kernel or firmware (SeaBIOS), `-bios` from
//! `<loader>`, `-boot` from `<bootmenu>` and `<bios>`, and each disk's and
//! NIC's `bootindex`, as libvirt 9.0 derives them for QEMU 7.2.

use std::fmt::Write as _;

use super::Builder;
use crate::model::Domain;

/// Why UEFI is refused, said once for `<loader type='pflash'>`, `<nvram>`
/// and `<os firmware='efi'>`.
const NO_UEFI: &str = "UEFI firmware is not supported by rvirt: OVMF cannot run on this host's \
     instruction emulator (it stops at x87 FNINIT); use SeaBIOS (no <loader>) or a direct \
     <kernel> boot";

/// `-bios` for `<loader>` (`type='rom'` or no type: libvirt passes the
/// file as QEMU's `-bios`), or nothing (the machine's SeaBIOS). UEFI in any
/// spelling is refused.
pub(super) fn firmware(dom: &Domain, b: &mut Builder) -> Option<String> {
    let os = &dom.os;
    if os.extra.attr("firmware") == Some("efi") {
        b.refuse(os.line.0, "os", format!("firmware='efi': {NO_UEFI}"));
    }
    let path = loader(dom, b);
    // After the loader's refusal, in document order.
    if let Some(nvram) = os.extra.child("nvram") {
        b.refuse(nvram.line.0, "os/nvram", NO_UEFI);
    }
    path
}

fn loader(dom: &Domain, b: &mut Builder) -> Option<String> {
    let os = &dom.os;
    let loader = os.extra.child("loader")?;
    let path = loader.text().trim().to_string();
    match loader.attr("type") {
        Some("pflash") => {
            b.refuse(loader.line.0, "os/loader", format!("'{path}': {NO_UEFI}"));
            return None;
        }
        None | Some("rom") => {}
        Some(t) => {
            b.refuse(
                loader.line.0,
                "os/loader",
                format!("loader type '{t}' is not supported"),
            );
            return None;
        }
    }
    // Derivation reads no files, so a UEFI image given as a ROM is known by
    // its name (Debian's OVMF and edk2 packages name theirs so).
    let name = path.rsplit('/').next().unwrap_or_default();
    if ["OVMF", "edk2", "QEMU_EFI"]
        .iter()
        .any(|w| name.contains(w))
    {
        b.refuse(loader.line.0, "os/loader", format!("'{path}': {NO_UEFI}"));
        return None;
    }
    if path.is_empty() {
        b.refuse(loader.line.0, "os/loader", "has no firmware file");
        return None;
    }
    if os.kernel.is_some() {
        // rvirt-vmm refuses -kernel with -bios (a direct boot needs no
        // firmware): say so here, with the line.
        b.refuse(
            loader.line.0,
            "os/loader",
            "a loader with a direct <kernel> boot is not supported",
        );
        return None;
    }
    Some(path)
}

/// `-boot`: libvirt's `menu=on|off` from `<bootmenu enable>`,
/// `reboot-timeout=` from `<bios rebootTimeout>`, `splash-time=` from the
/// menu's timeout (read only with the menu on, as libvirt does), then
/// `strict=on`. `<bios useserial>` adds nothing: libvirt 9.0 has no `sga`
/// device with QEMU 7.2, and rvirt's SeaBIOS always prints on COM1 (no
/// display).
pub(super) fn boot_option(dom: &Domain) -> String {
    let (menu, splash) = menu(dom);
    let mut s = String::new();
    match menu {
        Some(true) => s.push_str("menu=on,"),
        Some(false) => s.push_str("menu=off,"),
        None => {}
    }
    if let Some(t) = reboot_timeout(dom) {
        let _ = write!(s, "reboot-timeout={t},");
    }
    if let Some(t) = splash {
        let _ = write!(s, "splash-time={t},");
    }
    s.push_str("strict=on");
    s
}

/// `<bootmenu enable= timeout=>`: modelled when bare, kept whole in `extra`
/// with a timeout.
fn menu(dom: &Domain) -> (Option<bool>, Option<u32>) {
    let Some(e) = dom.os.extra.child("bootmenu") else {
        return (dom.os.bootmenu, None);
    };
    let on = match e.attr("enable") {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        _ => None,
    };
    let timeout = e.attr("timeout").and_then(|t| t.parse().ok());
    (on, timeout.filter(|_| on == Some(true)))
}

fn reboot_timeout(dom: &Domain) -> Option<i32> {
    dom.os
        .extra
        .child("bios")?
        .attr("rebootTimeout")?
        .parse()
        .ok()
}

/// Boot indices of the disks and NICs, in their order.
pub(super) struct Boot {
    pub disks: Vec<Option<u32>>,
    pub nics: Vec<Option<u32>>,
}

/// Per-device `<boot order>` as given; otherwise each `<os><boot dev>`'s
/// position (from 1) goes to the first device of its kind, a kind named
/// twice taking its last position, and network to the first NIC (libvirt
/// 9.0's qemuProcessPrepareDeviceBootorder). libvirt fills in `hd` when
/// neither is given (`fill_in`); an unfilled definition gets the same.
pub(super) fn indices(dom: &Domain) -> Boot {
    let devs = &dom.devices;
    let mut boot = Boot {
        disks: devs.disks.iter().map(|d| d.info.boot_order).collect(),
        nics: devs.interfaces.iter().map(|i| i.info.boot_order).collect(),
    };
    if boot.disks.iter().chain(&boot.nics).any(Option::is_some) {
        return boot;
    }
    let hd = ["hd".to_string()];
    let order = if dom.os.boot_devs.is_empty() {
        &hd[..]
    } else {
        &dom.os.boot_devs[..]
    };
    let position = |kind: &str| order.iter().rposition(|d| d == kind).map(|i| i as u32 + 1);
    for (kind, device) in [("hd", "disk"), ("cdrom", "cdrom"), ("fd", "floppy")] {
        let first = devs
            .disks
            .iter()
            .position(|d| d.device == device || (device == "disk" && d.device == "lun"));
        if let Some(i) = first {
            boot.disks[i] = position(kind);
        }
    }
    if let Some(n) = boot.nics.first_mut() {
        *n = position("network");
    }
    boot
}
