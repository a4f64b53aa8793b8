//! What rvirt-vmm emulates: the one table to change when a device issue
//! lands. Everything the derivation accepts or refuses is decided here.

/// How a device kind is treated when deriving the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Emulated: it gets command-line arguments.
    Emulated,
    /// Part of the machine or added on demand: nothing to emit, nothing to say.
    Implicit,
    /// Only a human at a display needs it: left off with a warning.
    Omitted,
    /// The guest would depend on it: derivation fails.
    Refused,
}

use Support::*;

/// Devices other than disks, NICs and character devices, by element name
/// and, where it matters, type or model (`None` matches any).
const DEVICES: &[(&str, Option<&str>, Support)] = &[
    ("memballoon", Some("virtio"), Emulated),
    ("memballoon", Some("none"), Implicit),
    ("rng", Some("virtio"), Emulated),
    ("controller", Some("pci-root"), Implicit),
    ("controller", Some("pcie-root"), Implicit),
    ("controller", Some("pcie-root-port"), Emulated),
    ("controller", Some("pcie-to-pci-bridge"), Emulated),
    ("controller", Some("ide"), Implicit),
    ("controller", Some("fdc"), Implicit),
    ("controller", Some("virtio-serial"), Implicit),
    // qemu-xhci (argv/usb.rs); the other models are left off there.
    ("controller", Some("usb"), Emulated),
    // q35's built-in AHCI (00:1f.2) is part of the machine; another one
    // (pc, or a second on q35) is `-device ahci`, emitted with the disks'
    // controllers (derive's sata_controllers()).
    ("controller", Some("sata"), Implicit),
    // Emitted with its disks (argv/scsi.rs); other SCSI models are left
    // off, their disks refused.
    ("controller", Some("virtio-scsi"), Emulated),
    ("controller", Some("scsi"), Omitted),
    ("controller", Some("ccid"), Omitted),
    ("input", Some("ps2"), Implicit),
    ("input", Some("virtio"), Emulated),
    // On a qemu-xhci (argv/usb.rs), else left off there.
    ("input", Some("usb"), Emulated),
    ("input", None, Omitted),
    // Derived by argv/graphics.rs, which refuses the rest with its reason.
    ("graphics", Some("vnc"), Emulated),
    ("video", Some("vga"), Emulated),
    ("video", Some("bochs"), Emulated),
    ("video", Some("none"), Implicit),
    ("sound", None, Omitted),
    ("audio", None, Omitted),
    ("redirdev", None, Omitted),
    ("redirfilter", None, Omitted),
    ("smartcard", None, Omitted),
    ("hub", None, Omitted),
    ("watchdog", Some("i6300esb"), Emulated),
    ("parallel", None, Emulated),
];

/// Support for a device that is not a disk, NIC or character device.
/// `variant` is the model for memballoon/rng... as listed above; for
/// inputs it is the bus; for controllers the type, and for PCI
/// controllers the model. Anything not in the table is refused.
pub fn device(kind: &str, variant: Option<&str>) -> Support {
    DEVICES
        .iter()
        .find(|(k, v, _)| *k == kind && v.is_none_or(|v| Some(v) == variant))
        .map_or(Refused, |(_, _, s)| *s)
}

/// The running domain as clients should see it: what derivation leaves
/// off that a client would try to use is not shown. A `<graphics>` in
/// the live XML makes virt-viewer and virt-manager connect to a display
/// server that does not exist (virt-viewer waits for it forever), and a
/// `<channel>` promises a guest agent or spice channel nobody serves.
/// The persistent definition keeps both, as written.
pub fn live_view(dom: &crate::Domain) -> crate::Domain {
    let mut live = dom.clone();
    live.devices
        .others
        .retain(|o| !(o.kind() == "graphics" && device("graphics", o.dev_type()) != Emulated));
    live.devices.channels.clear();
    live
}

/// The `-device` driver for a disk on `bus`, if rvirt-vmm has one,
/// without its transport suffix (`-pci`, `-device`).
pub fn disk_driver(bus: &str) -> Option<&'static str> {
    match bus {
        "virtio" => Some("virtio-blk"),
        "sata" | "ide" => Some("ide-hd"),
        // scsi-hd or scsi-cd, on a virtio-scsi controller (argv/scsi.rs).
        "scsi" => Some("scsi-hd"),
        _ => None,
    }
}

/// The `-device` driver for a `<disk device=…>` on `bus`: a disk's, or a
/// CD-ROM's (an ATAPI drive on SATA or IDE, an MMC LUN on SCSI; virtio
/// has no CD-ROM).
pub fn disk_device_driver(bus: &str, device: &str) -> Option<&'static str> {
    match (bus, device) {
        (_, "disk") => disk_driver(bus),
        ("sata" | "ide", "cdrom") => Some("ide-cd"),
        ("scsi", "cdrom") => Some("scsi-cd"),
        _ => None,
    }
}

/// The `-device` driver of an AHCI controller that is not q35's built-in one.
pub const AHCI: &str = "ahci";

/// Disk source types rvirt-vmm can open, with the block driver for each.
pub fn disk_source_driver(disk_type: &str) -> Option<&'static str> {
    match disk_type {
        "file" => Some("file"),
        "block" => Some("host_device"),
        _ => None,
    }
}

/// Image formats rvirt-vmm reads.
pub fn disk_format(format: &str) -> bool {
    matches!(format, "raw" | "qcow2")
}

/// The `-device` driver for a NIC model, without its transport suffix.
pub fn nic_driver(model: &str) -> Option<&'static str> {
    match model {
        "virtio" => Some("virtio-net"),
        // QEMU's 82540EM and 82574L; only ever PCI functions.
        "e1000" => Some("e1000"),
        "e1000e" => Some("e1000e"),
        _ => None,
    }
}

/// Whether a NIC model's driver is a PCI device with no transport suffix
/// (no virtio-mmio form).
pub fn nic_is_pci_only(model: &str) -> bool {
    matches!(model, "e1000" | "e1000e")
}

/// Interface types whose backend is a host tap device.
pub fn nic_backend_is_tap(iface_type: &str) -> bool {
    matches!(iface_type, "network" | "bridge" | "ethernet")
}

/// Interface types rvirt-vmm can back: a tap, or user-mode networking
/// (passt, run by the VMM or by the daemon).
pub fn nic_backend(iface_type: &str) -> bool {
    nic_backend_is_tap(iface_type) || iface_type == "user"
}

/// Host sides of character devices rvirt-vmm can open. UNIX sockets only
/// as a server (`mode='bind'`): rvirt-vmm does not connect out.
pub fn chardev_backend(dev_type: &str, mode: Option<&str>) -> Result<(), String> {
    match dev_type {
        "pty" | "file" | "null" | "stdio" => Ok(()),
        "unix" if mode == Some("bind") => Ok(()),
        "unix" => Err(format!(
            "a UNIX socket in '{}' mode is not supported: only mode='bind'",
            mode.unwrap_or("connect")
        )),
        other => Err(format!("host side '{other}' is not supported")),
    }
}

/// CPU models `-cpu` takes (libvirt's host-passthrough and host-model
/// become `host`, maximum `max`): rvirt-vmm's own table.
pub fn cpu_model(name: &str) -> bool {
    rvirt_vmm_config::caps::is_known_cpu_model(name)
}

/// Machine types `-machine` takes: rvirt-vmm's own table.
pub fn machine(name: &str) -> bool {
    rvirt_vmm_config::caps::is_known_machine(name)
}

/// RTC offsets: the RTC runs on UTC.
pub fn clock_offset(offset: &str) -> bool {
    offset == "utc"
}

/// Memory hotplug (`<maxMemory slots=…>`): no DIMM slots yet.
pub const MEMORY_HOTPLUG: bool = false;

/// CPU clusters in the topology: x86 has none.
pub const CLUSTERS: bool = false;

/// Guest sides of serial ports (`<target type>`): only the 16550 on the ISA bus.
pub fn serial_driver(target_type: Option<&str>) -> Option<&'static str> {
    match target_type {
        None | Some("isa-serial") => Some("isa-serial"),
        _ => None,
    }
}

/// Guest NUMA topology (`-numa`): not emulated yet.
pub const NUMA: bool = false;

/// The virtio console port, and the virtio devices without their
/// transport suffix (`-pci` on pc and q35, `-device` on virtio-mmio).
pub const VIRTCONSOLE: &str = "virtconsole";
pub const VIRTIO_SERIAL: &str = "virtio-serial";
pub const VIRTIO_BALLOON: &str = "virtio-balloon";
pub const VIRTIO_RNG: &str = "virtio-rng";
/// The balloon's device id, and its QOM path, where the guest's memory
/// statistics are read and their polling interval set (as libvirt does).
pub const BALLOON_ID: &str = "balloon0";
pub const BALLOON_QOM_PATH: &str = "/machine/peripheral/balloon0";

/// The `-device` driver stem (`-device` or `-pci` follows) for a virtio
/// `<input type=…>` (QEMU's virtio-input-hid devices; `passthrough` and
/// `evdev` are host devices rvirt-vmm does not open).
pub fn virtio_input_driver(input_type: &str) -> Option<&'static str> {
    match input_type {
        "keyboard" => Some("virtio-keyboard"),
        "mouse" => Some("virtio-mouse"),
        "tablet" => Some("virtio-tablet"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_classifies_devices() {
        assert_eq!(device("rng", Some("virtio")), Emulated);
        assert_eq!(device("graphics", Some("vnc")), Emulated);
        assert_eq!(device("graphics", Some("spice")), Refused);
        assert_eq!(device("video", Some("qxl")), Refused);
        assert_eq!(device("input", Some("usb")), Emulated);
        assert_eq!(device("input", Some("ps2")), Implicit);
        assert_eq!(device("input", Some("virtio")), Emulated);
        assert_eq!(virtio_input_driver("tablet"), Some("virtio-tablet"));
        assert_eq!(virtio_input_driver("passthrough"), None);
        assert_eq!(device("hostdev", Some("pci")), Refused);
        assert_eq!(device("controller", Some("pcie-root-port")), Emulated);
        assert_eq!(device("controller", Some("pci-root")), Implicit);
        assert_eq!(device("controller", Some("pci-bridge")), Refused);
        assert_eq!(device("filesystem", None), Refused);
        assert_eq!(device("watchdog", Some("i6300esb")), Emulated);
        assert_eq!(device("watchdog", Some("ib700")), Refused);
        assert_eq!(device("something-new", None), Refused);
        assert_eq!(disk_device_driver("sata", "cdrom"), Some("ide-cd"));
        assert_eq!(disk_device_driver("ide", "disk"), Some("ide-hd"));
        assert_eq!(disk_device_driver("virtio", "cdrom"), None);
        assert_eq!(disk_device_driver("scsi", "disk"), Some("scsi-hd"));
        assert_eq!(disk_device_driver("scsi", "cdrom"), Some("scsi-cd"));
        assert_eq!(disk_device_driver("usb", "disk"), None);
        assert_eq!(nic_driver("e1000"), Some("e1000"));
        assert_eq!(nic_driver("e1000e"), Some("e1000e"));
        assert_eq!(nic_driver("igb"), None);
    }

    #[test]
    fn chardevs_cpus_and_clocks() {
        assert!(chardev_backend("pty", None).is_ok());
        assert!(chardev_backend("unix", Some("bind")).is_ok());
        assert!(chardev_backend("unix", None)
            .unwrap_err()
            .contains("'connect' mode"));
        assert!(chardev_backend("tcp", Some("bind")).is_err());
        assert!(cpu_model("qemu64") && cpu_model("host"));
        assert!(cpu_model("Nehalem") && !cpu_model("Skylake-Client"));
    }

    #[test]
    fn the_live_view_shows_no_display_and_no_channel() {
        let dom = crate::Domain::from_xml(
            "<domain type='kvm'><name>g</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><graphics type='spice' port='-1'/><video><model type='vga'/></video>\
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             </devices></domain>",
        )
        .unwrap();
        let live = live_view(&dom).to_xml();
        assert!(
            !live.contains("<graphics") && !live.contains("<channel"),
            "{live}"
        );
        assert!(live.contains("<video"), "{live}");
        assert!(dom.to_xml().contains("<graphics"));
        let vnc = crate::Domain::from_xml(
            "<domain type='kvm'><name>g</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><graphics type='vnc' port='-1'/></devices></domain>",
        )
        .unwrap();
        assert!(live_view(&vnc).to_xml().contains("<graphics type='vnc'"));
        assert!(machine("pc-q35-7.2") && machine("microvm") && !machine("virt"));
        assert!(clock_offset("utc") && !clock_offset("localtime"));
    }
}
