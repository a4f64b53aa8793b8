//! The typed domain definition.
//!
//! Every struct keeps `extra`: the attributes and child elements of its XML
//! element that the model does not interpret, so that writing the domain
//! back loses nothing the user wrote.

use crate::mac::Mac;
use crate::xml::{Element, Line, Text};

/// Attributes of a modelled element that the model does not interpret
/// (`<memory dumpCore='on'>`, `<mac type='static'>`…), written back as read.
pub type KeptAttrs = Vec<(Text, Text)>;

/// A libvirt domain definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// `<domain type='…'>`: `kvm` or `qemu`.
    pub kind: String,
    pub name: String,
    pub uuid: Option<uuid::Uuid>,
    pub genid: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Kept verbatim.
    pub metadata: Option<Element>,
    /// `<memory>`, in KiB.
    pub memory_kib: u64,
    pub memory_attrs: KeptAttrs,
    /// `<currentMemory>`, in KiB.
    pub current_memory_kib: Option<u64>,
    pub current_memory_attrs: KeptAttrs,
    pub max_memory: Option<MaxMemory>,
    /// Kept verbatim.
    pub memory_backing: Option<Element>,
    pub vcpu: Vcpu,
    /// Kept verbatim.
    pub cputune: Option<Element>,
    pub cpu: Option<Cpu>,
    pub os: Os,
    /// `<features>`, kept verbatim (see [`Domain::has_feature`]).
    pub features: Option<Element>,
    pub clock: Option<Clock>,
    pub on_poweroff: Option<LifecycleAction>,
    pub on_reboot: Option<LifecycleAction>,
    pub on_crash: Option<LifecycleAction>,
    /// Kept verbatim.
    pub pm: Option<Element>,
    pub devices: Devices,
    /// Unknown top-level attributes and elements (e.g. `seclabel`, `qemu:commandline`).
    pub extra: Element,
    pub lines: Lines,
}

/// Source lines of top-level elements, for errors found after parsing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lines {
    pub domain: Line,
    pub name: Line,
    pub memory: Line,
    pub current_memory: Line,
    pub max_memory: Line,
    pub vcpu: Line,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxMemory {
    pub kib: u64,
    pub slots: Option<u32>,
    pub attrs: KeptAttrs,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vcpu {
    /// The maximum number of vCPUs (the element's text).
    pub count: u32,
    pub placement: Option<String>,
    pub cpuset: Option<String>,
    /// vCPUs online at boot, when fewer than `count`.
    pub current: Option<u32>,
    pub extra: Element,
}

/// `<cpu>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cpu {
    pub mode: Option<String>,
    pub match_: Option<String>,
    pub check: Option<String>,
    pub model: Option<CpuModel>,
    pub vendor: Option<String>,
    pub topology: Option<Topology>,
    pub features: Vec<CpuFeature>,
    pub extra: Element,
    pub line: Line,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuModel {
    pub name: String,
    pub fallback: Option<String>,
    pub vendor_id: Option<String>,
    pub attrs: KeptAttrs,
}

/// `<topology>`: counts left out are taken as 1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub sockets: u32,
    pub dies: Option<u32>,
    pub clusters: Option<u32>,
    pub cores: u32,
    pub threads: u32,
    pub attrs: KeptAttrs,
    pub line: Line,
}

impl Topology {
    /// Total vCPU slots the topology describes.
    pub fn product(&self) -> u64 {
        [
            self.sockets,
            self.dies.unwrap_or(1),
            self.clusters.unwrap_or(1),
            self.cores,
            self.threads,
        ]
        .iter()
        // Saturating: absurd counts must not overflow on user input.
        .fold(1u64, |acc, &n| acc.saturating_mul(u64::from(n)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeature {
    /// force, require, optional, disable or forbid.
    pub policy: Option<String>,
    pub name: String,
}

/// `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Os {
    /// The `<type>` text: `hvm` for KVM guests.
    pub os_type: String,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    /// `<boot dev='…'/>` in order.
    pub boot_devs: Vec<String>,
    /// `<bootmenu enable='yes|no'/>`.
    pub bootmenu: Option<bool>,
    /// Unknown and kept parts: `loader`, `nvram`, `smbios`, `bios`, `firmware`…
    pub extra: Element,
    pub line: Line,
}

/// `<clock>`: the offset is interpreted, timers are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clock {
    pub offset: Option<String>,
    pub extra: Element,
}

/// What to do when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
}

impl LifecycleAction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "destroy" => Self::Destroy,
            "restart" => Self::Restart,
            "preserve" => Self::Preserve,
            "rename-restart" => Self::RenameRestart,
            "coredump-destroy" => Self::CoredumpDestroy,
            "coredump-restart" => Self::CoredumpRestart,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::Preserve => "preserve",
            Self::RenameRestart => "rename-restart",
            Self::CoredumpDestroy => "coredump-destroy",
            Self::CoredumpRestart => "coredump-restart",
        }
    }
}

/// `<devices>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    pub emulator: Option<String>,
    pub disks: Vec<Disk>,
    pub interfaces: Vec<Interface>,
    pub serials: Vec<Chardev>,
    pub consoles: Vec<Chardev>,
    pub channels: Vec<Chardev>,
    /// Devices the model reads only by kind, type and model.
    pub others: Vec<OtherDevice>,
    pub extra: Element,
}

/// Parts shared by every device: boot order, alias and address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    pub boot_order: Option<u32>,
    /// Other attributes of `<boot>` (`loadparm`).
    pub boot_attrs: KeptAttrs,
    pub alias: Option<String>,
    /// Kept as written (`type='pci'`, `'drive'`, `'virtio-mmio'`…).
    pub address: Option<Element>,
}

/// `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disk {
    /// file, block, network, volume, dir…
    pub disk_type: String,
    /// disk, cdrom, floppy or lun.
    pub device: String,
    pub driver: Option<DiskDriver>,
    /// Kept whole: its shape depends on the type (file/dev/protocol+host/pool+volume).
    pub source: Option<Element>,
    /// Kept whole.
    pub backing_store: Option<Element>,
    pub target_dev: String,
    pub target_bus: Option<String>,
    pub target_extra: Element,
    pub readonly: bool,
    pub shareable: bool,
    pub serial: Option<String>,
    pub info: DeviceInfo,
    pub extra: Element,
    pub line: Line,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskDriver {
    pub name: Option<String>,
    /// The image format (`type` attribute): raw, qcow2…
    pub format: Option<String>,
    pub cache: Option<String>,
    pub io: Option<String>,
    pub discard: Option<String>,
    pub detect_zeroes: Option<String>,
    pub extra: Element,
}

impl Disk {
    /// The host path or name the disk reads from, whatever its type.
    pub fn source_path(&self) -> Option<&str> {
        let s = self.source.as_ref()?;
        s.attr("file")
            .or_else(|| s.attr("dev"))
            .or_else(|| s.attr("dir"))
            .or_else(|| s.attr("name"))
            .or_else(|| s.attr("volume"))
    }

    /// The bus, defaulting from the target name as libvirt does.
    pub fn bus(&self) -> &str {
        if let Some(b) = &self.target_bus {
            return b;
        }
        let d = self.target_dev.as_str();
        if d.starts_with("vd") {
            "virtio"
        } else if d.starts_with("hd") {
            "ide"
        } else if d.starts_with("fd") {
            "fdc"
        } else if d.starts_with("sd") {
            "scsi"
        } else if d.starts_with("xvd") {
            "xen"
        } else if d.starts_with("ubd") {
            "uml"
        } else {
            "none"
        }
    }
}

/// `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// network, bridge, user, ethernet, direct…
    pub iface_type: String,
    pub mac: Option<Mac>,
    pub mac_attrs: KeptAttrs,
    /// Kept whole (`network=`, `bridge=`, `dev=`+`mode=`…).
    pub source: Option<Element>,
    pub model: Option<String>,
    /// `<target dev='…'/>`: the host tap name.
    pub target_dev: Option<String>,
    pub info: DeviceInfo,
    pub extra: Element,
    pub line: Line,
}

/// Which element a character device came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChardevKind {
    Serial,
    Console,
    Channel,
}

impl ChardevKind {
    pub fn element(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::Console => "console",
            Self::Channel => "channel",
        }
    }
}

/// `<serial>`, `<console>` or `<channel>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chardev {
    pub kind: ChardevKind,
    /// Host side: pty, file, unix, tcp, udp, null, spicevmc, stdio…
    pub dev_type: String,
    /// Kept whole (`path=`, `mode=`, `host=`, `service=`…).
    pub source: Option<Element>,
    /// `<protocol type='raw|telnet'/>`.
    pub protocol: Option<String>,
    /// Guest side: `type` (isa-serial, serial, virtio…), `port`, `name`.
    pub target: Option<Element>,
    pub info: DeviceInfo,
    pub extra: Element,
    pub line: Line,
}

impl Chardev {
    pub fn target_type(&self) -> Option<&str> {
        self.target.as_ref()?.attr("type")
    }

    pub fn source_attr(&self, name: &str) -> Option<&str> {
        self.source.as_ref()?.attr(name)
    }
}

/// Any other device: controller, input, graphics, video, sound, memballoon,
/// rng, watchdog, panic, filesystem, hostdev…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherDevice {
    /// Element as written, alias/address included.
    pub element: Element,
}

impl OtherDevice {
    /// The element name: `controller`, `rng`…
    pub fn kind(&self) -> &str {
        &self.element.name
    }

    /// The `type` attribute (`<controller type='usb'>`, `<input type='tablet'>`…).
    pub fn dev_type(&self) -> Option<&str> {
        self.element.attr("type")
    }

    /// The model, wherever this kind of device keeps it.
    pub fn model(&self) -> Option<&str> {
        match self.kind() {
            "video" => self.element.child("model")?.attr("type"),
            _ => self.element.attr("model"),
        }
    }

    pub fn line(&self) -> u32 {
        self.element.line.0
    }
}

impl Domain {
    /// Whether `<features>` enables a feature (`acpi`, `apic`, `pae`…).
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.as_ref().is_some_and(|f| {
            f.child(name)
                .is_some_and(|e| e.attr("state").is_none_or(|s| s == "on"))
        })
    }

    /// vCPUs online at boot.
    pub fn boot_vcpus(&self) -> u32 {
        self.vcpu.current.unwrap_or(self.vcpu.count)
    }
}
