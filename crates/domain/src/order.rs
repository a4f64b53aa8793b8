//! The order in which libvirt writes child elements and attributes. Output
//! is sorted by these tables (stably, unknown names last in their original
//! order), so a definition written here lays out as `virsh dumpxml` does.

pub const DOMAIN: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_lockfailure",
    "pm",
    "perf",
    "devices",
    "seclabel",
    "keywrap",
    "launchSecurity",
];

pub const OS: &[&str] = &[
    "type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "shim", "dtb", "acpi",
    "boot", "bootmenu", "smbios", "bios",
];

pub const CPU: &[&str] = &[
    "model",
    "vendor",
    "topology",
    "cache",
    "maxphysaddr",
    "feature",
    "numa",
];

pub const DEVICES: &[&str] = &[
    "emulator",
    "disk",
    "controller",
    "lease",
    "filesystem",
    "interface",
    "smartcard",
    "serial",
    "parallel",
    "console",
    "channel",
    "input",
    "tpm",
    "graphics",
    "sound",
    "audio",
    "video",
    "hostdev",
    "redirdev",
    "redirfilter",
    "hub",
    "watchdog",
    "memballoon",
    "rng",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "vsock",
    "crypto",
];

pub const DISK: &[&str] = &[
    "driver",
    "auth",
    "source",
    "backingStore",
    "backenddomain",
    "geometry",
    "blockio",
    "mirror",
    "target",
    "iotune",
    "throttlefilters",
    "readonly",
    "shareable",
    "transient",
    "serial",
    "wwn",
    "vendor",
    "product",
    "encryption",
    "boot",
    "alias",
    "address",
];

pub const DISK_DRIVER_ATTRS: &[&str] = &[
    "name",
    "type",
    "cache",
    "error_policy",
    "rerror_policy",
    "io",
    "ioeventfd",
    "event_idx",
    "copy_on_read",
    "discard",
    "iothread",
    "detect_zeroes",
    "queues",
    "queue_size",
];

pub const INTERFACE: &[&str] = &[
    "mac",
    "source",
    "virtualport",
    "ip",
    "route",
    "portForward",
    "script",
    "downscript",
    "backenddomain",
    "target",
    "guest",
    "model",
    "driver",
    "backend",
    "filterref",
    "tune",
    "teaming",
    "link",
    "mtu",
    "coalesce",
    "boot",
    "rom",
    "alias",
    "address",
];

pub const CHARDEV: &[&str] = &["source", "protocol", "log", "target", "alias", "address"];

/// `<pool>` (storage pools).
pub const POOL: &[&str] = &[
    "name",
    "uuid",
    "capacity",
    "allocation",
    "available",
    "features",
    "source",
    "target",
    "refresh",
];

/// `<volume>` (storage volumes).
pub const VOLUME: &[&str] = &[
    "name",
    "key",
    "source",
    "capacity",
    "allocation",
    "physical",
    "target",
    "backingStore",
];

/// `<target>` of a pool or a volume, and a volume's `<backingStore>`.
pub const STORAGE_TARGET: &[&str] = &[
    "path",
    "format",
    "permissions",
    "timestamps",
    "encryption",
    "compat",
    "clusterSize",
    "nocow",
    "features",
];

/// `<permissions>`.
pub const PERMISSIONS: &[&str] = &["mode", "owner", "group", "label"];

/// Rank of `name` in `table`; unknown names rank after every known one.
pub fn rank(table: &[&str], name: &str) -> usize {
    table.iter().position(|n| *n == name).unwrap_or(table.len())
}

/// `<network>` children, as `virNetworkDefFormatBuf` writes them.
pub const NETWORK: &[&str] = &[
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "forward",
    "bridge",
    "mtu",
    "mac",
    "domain",
    "dns",
    "vlan",
    "bandwidth",
    "virtualport",
    "ip",
    "route",
    "portgroup",
];

/// `<forward>` children.
pub const NETWORK_FORWARD: &[&str] = &["nat", "pf", "driver", "interface", "address"];

/// `<nat>` children.
pub const NETWORK_NAT: &[&str] = &["address", "port"];

/// `<bridge>` attributes.
pub const NETWORK_BRIDGE_ATTRS: &[&str] = &["name", "zone", "stp", "delay", "macTableManager"];

/// `<dns>` children.
pub const NETWORK_DNS: &[&str] = &["forwarder", "txt", "srv", "host"];

/// `<ip>` children.
pub const NETWORK_IP: &[&str] = &["tftp", "dhcp"];

/// `<dhcp>` children.
pub const NETWORK_DHCP: &[&str] = &["range", "host", "bootp"];
