//! The options that build virtio devices: `-object rng-random`, `-drive`,
//! `-blockdev` (file/host_device + raw, as libvirt writes them), `-netdev`
//! and `-device virtio-{rng,blk,net,serial,balloon}-device` with
//! `virtconsole`. Backends are collected as they come and joined to their
//! devices at the end, since QEMU accepts them in any order; devices keep
//! command-line order, which is slot order.

use std::path::PathBuf;

use super::netdev::{parse_mac, parse_netdev, MacTable};
use crate::chardev::ChardevBackend;
use crate::config::{
    BalloonConfig, ConsoleConfig, ConsolePort, DiskConfig, NetConfig, TapSource, VirtioConfig,
};
use crate::opts::Opts;
use crate::ConfigError;

/// A disk backend before a device uses it.
#[derive(Debug, Clone)]
struct Drive {
    /// `-drive id=` or the raw node's `node-name`.
    id: String,
    blockdev: bool,
    path: PathBuf,
    readonly: bool,
    discard: bool,
    cache: Option<String>,
    aio: Option<String>,
}

/// A `driver=file` / `host_device` blockdev node.
#[derive(Debug, Clone)]
struct StorageNode {
    name: String,
    path: PathBuf,
    readonly: bool,
    discard: bool,
    cache: Option<String>,
    aio: Option<String>,
}

/// A `driver=raw` blockdev node on top of a storage node.
#[derive(Debug, Clone)]
struct FormatNode {
    name: String,
    file: String,
    readonly: bool,
}

enum DeviceRef {
    Rng {
        rng: String,
        id: Option<String>,
    },
    Blk {
        drive: String,
        id: Option<String>,
        serial: Option<String>,
        bootindex: Option<u32>,
    },
    Net {
        netdev: String,
        id: Option<String>,
        mac: Option<[u8; 6]>,
        bootindex: Option<u32>,
    },
    /// A virtio-serial-device and the one virtconsole on it, if any.
    Serial {
        id: Option<String>,
        /// QEMU's name for its bus, which `virtconsole,bus=` names.
        bus: String,
        port: Option<PortRef>,
    },
    Balloon(BalloonConfig),
}

/// A `virtconsole` before its chardev is looked up.
struct PortRef {
    chardev: String,
    id: Option<String>,
}

/// The virtio options seen so far.
#[derive(Default)]
pub(super) struct VirtioSpecs {
    rng_objects: Vec<(String, PathBuf)>,
    drives: Vec<Drive>,
    storage: Vec<StorageNode>,
    formats: Vec<FormatNode>,
    netdevs: Vec<(String, TapSource)>,
    devices: Vec<DeviceRef>,
    /// QEMU numbers the buses of id-less virtio-serial-devices globally:
    /// `virtio-serial-bus.0`, `.1`, …
    anonymous_serial_buses: usize,
}

/// virtio-net's on/off feature properties (QEMU 7.2's names).
const NET_FEATURE_SWITCHES: &[&str] = &[
    "csum",
    "guest_csum",
    "gso",
    "guest_tso4",
    "guest_tso6",
    "guest_ecn",
    "guest_ufo",
    "guest_announce",
    "host_tso4",
    "host_tso6",
    "host_ecn",
    "host_ufo",
    "mrg_rxbuf",
    "status",
    "ctrl_vq",
    "ctrl_rx",
    "ctrl_vlan",
    "ctrl_rx_extra",
    "ctrl_mac_addr",
    "ctrl_guest_offloads",
    "event_idx",
    "indirect_desc",
    "any_layout",
];

const CACHE_MODES: &[&str] = &["none", "writeback", "writethrough", "directsync", "unsafe"];
const AIO_MODES: &[&str] = &["threads", "native", "io_uring"];

fn check_format(o: &Opts, format: &str) -> Result<(), ConfigError> {
    match format {
        "raw" => Ok(()),
        "qcow2" | "qcow" | "vmdk" | "vdi" | "vhdx" | "qed" => Err(o.error(format!(
            "format '{format}' is not supported yet (only raw images)"
        ))),
        other => Err(o.error(format!("unknown format '{other}'"))),
    }
}

fn one_of(o: &mut Opts, key: &str, allowed: &[&str]) -> Result<Option<String>, ConfigError> {
    match o.get(key) {
        Some(v) if !allowed.contains(&v.as_str()) => Err(o.error(format!(
            "parameter '{key}' expects one of {}, not '{v}'",
            allowed.join(", ")
        ))),
        v => Ok(v),
    }
}

/// `discard=ignore|off|unmap|on`: true when discards reach the file.
fn discard(o: &mut Opts) -> Result<bool, ConfigError> {
    match o.get("discard").as_deref() {
        None | Some("ignore" | "off") => Ok(false),
        Some("unmap" | "on") => Ok(true),
        Some(v) => Err(o.error(format!(
            "parameter 'discard' expects 'ignore' or 'unmap', not '{v}'"
        ))),
    }
}

fn file_path(o: &mut Opts, key: &str) -> Result<PathBuf, ConfigError> {
    let f = o.require(key)?;
    if f.is_empty() {
        return Err(o.error("empty file name".into()));
    }
    Ok(PathBuf::from(f))
}

impl VirtioSpecs {
    /// `-object TYPE,id=ID,...`.
    pub(super) fn object(&mut self, v: &str) -> Result<(), ConfigError> {
        let mut o = Opts::parse("-object", v, Some("qom-type"))?;
        let kind = o.require("qom-type")?;
        let id = o.require("id")?;
        let filename = match kind.as_str() {
            "rng-random" => o
                .get("filename")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev/urandom")),
            // QEMU's builtin backend is its own CSPRNG; the kernel's is ours.
            "rng-builtin" => PathBuf::from("/dev/urandom"),
            other => return Err(o.error(format!("object type '{other}' is not supported yet"))),
        };
        o.finish()?;
        if self.rng_objects.iter().any(|(i, _)| *i == id) {
            return Err(ConfigError::new(
                "-object",
                format!("duplicate object id '{id}'"),
            ));
        }
        self.rng_objects.push((id, filename));
        Ok(())
    }

    /// `-drive file=…,format=raw,if=none,id=ID,…`.
    pub(super) fn drive(&mut self, v: &str) -> Result<(), ConfigError> {
        let mut o = Opts::parse("-drive", v, None)?;
        let path = file_path(&mut o, "file")?;
        if let Some(f) = o.get("format") {
            check_format(&o, &f)?;
        }
        match o.get("if").as_deref() {
            Some("none") => {}
            Some(other) => {
                return Err(o.error(format!(
                    "if={other} is not supported yet: use if=none with -device virtio-blk-device"
                )))
            }
            None => {
                return Err(o.error(
                    "only if=none is supported (with -device virtio-blk-device,drive=ID)".into(),
                ))
            }
        }
        let id = o.require("id")?;
        if let Some(m) = o.get("media") {
            if m != "disk" {
                return Err(o.error(format!("media={m} is not supported yet")));
            }
        }
        let readonly = o.get_bool("readonly")?.unwrap_or(false);
        let cache = one_of(&mut o, "cache", CACHE_MODES)?;
        let aio = one_of(&mut o, "aio", AIO_MODES)?;
        let discard = discard(&mut o)?;
        o.ignore(&["werror", "rerror", "detect-zeroes", "auto-read-only"]);
        o.finish()?;
        self.check_new_drive("-drive", &id)?;
        self.drives.push(Drive {
            id,
            blockdev: false,
            path,
            readonly,
            discard,
            cache,
            aio,
        });
        Ok(())
    }

    fn check_new_drive(&self, opt: &str, id: &str) -> Result<(), ConfigError> {
        let taken = self.drives.iter().any(|d| d.id == id)
            || self.storage.iter().any(|s| s.name == id)
            || self.formats.iter().any(|f| f.name == id);
        if taken {
            return Err(ConfigError::new(
                opt,
                format!("duplicate node name or id '{id}'"),
            ));
        }
        Ok(())
    }

    /// `-blockdev`: a `file`/`host_device` node, or a `raw` node on one.
    pub(super) fn blockdev(&mut self, v: &str) -> Result<(), ConfigError> {
        let mut o = Opts::parse("-blockdev", v, None)?;
        let driver = o.require("driver")?;
        let name = o.require("node-name")?;
        let readonly = o.get_bool("read-only")?.unwrap_or(false);
        o.ignore(&[
            "auto-read-only",
            "detect-zeroes",
            "cache.no-flush",
            "locking",
        ]);
        let direct = o.get_bool("cache.direct")?;
        let discard = discard(&mut o)?;
        match driver.as_str() {
            "file" | "host_device" => {
                let path = file_path(&mut o, "filename")?;
                let aio = one_of(&mut o, "aio", AIO_MODES)?;
                o.finish()?;
                self.check_new_drive("-blockdev", &name)?;
                self.storage.push(StorageNode {
                    name,
                    path,
                    readonly,
                    discard,
                    cache: direct.map(|d| if d { "none" } else { "writeback" }.to_string()),
                    aio,
                });
            }
            "raw" => {
                let Some(file) = o.get("file") else {
                    return Err(o.error(
                        "parameter 'file' is missing (the name of a driver=file node)".into(),
                    ));
                };
                o.finish()?;
                self.check_new_drive("-blockdev", &name)?;
                self.formats.push(FormatNode {
                    name,
                    file,
                    readonly,
                });
            }
            other => {
                check_format(&o, other)?;
            }
        }
        Ok(())
    }

    /// `-netdev tap,id=ID,…`.
    pub(super) fn netdev(&mut self, v: &str) -> Result<(), ConfigError> {
        let (id, tap) = parse_netdev(v)?;
        if self.netdevs.iter().any(|(i, _)| *i == id) {
            return Err(ConfigError::new(
                "-netdev",
                format!("Duplicate ID '{id}' for netdev"),
            ));
        }
        self.netdevs.push((id, tap));
        Ok(())
    }

    /// `-device virtconsole,…`: attaches to the named bus, else to the
    /// first virtio-serial-device before it with no port yet. As in QEMU,
    /// the bus must come first on the command line.
    fn virtconsole(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let chardev = o
            .get("chardev")
            .ok_or_else(|| o.error("virtconsole without 'chardev' is not supported yet".into()))?;
        let id = o.get("id");
        if let Some(nr) = o.get_u32("nr")? {
            if nr != 0 {
                return Err(o.error(format!(
                    "nr={nr}: only port 0 is supported yet (no multiport virtio-serial)"
                )));
            }
        }
        // The name only reaches the guest through MULTIPORT control messages.
        o.ignore(&["name"]);
        let bus = o.get("bus");
        let mut buses = self.devices.iter_mut().filter_map(|d| match d {
            DeviceRef::Serial { bus, port, .. } => Some((bus, port)),
            _ => None,
        });
        let slot = match &bus {
            Some(name) => buses
                .find(|(b, _)| *b == name)
                .map(|(_, p)| p)
                .ok_or_else(|| o.error(format!("Bus '{name}' not found")))?,
            None => {
                let mut all: Vec<_> = buses.collect();
                if all.is_empty() {
                    return Err(o.error(
                        "No 'virtio-serial-bus' bus found for device 'virtconsole'".into(),
                    ));
                }
                let free = all.iter().position(|(_, p)| p.is_none()).unwrap_or(0);
                all.swap_remove(free).1
            }
        };
        if slot.is_some() {
            return Err(
                o.error("more than one port per virtio-serial device is not supported yet".into())
            );
        }
        *slot = Some(PortRef { chardev, id });
        Ok(())
    }

    /// `-device virtio-*-device,…`; false if `driver` is not one of ours.
    pub(super) fn device(&mut self, driver: &str, o: &mut Opts) -> Result<bool, ConfigError> {
        let dev = match driver {
            "virtio-rng-device" => {
                let rng = o.require("rng")?;
                let id = o.get("id");
                o.ignore(&["max-bytes", "period"]);
                DeviceRef::Rng { rng, id }
            }
            "virtio-blk-device" => {
                let drive = o.require("drive")?;
                let id = o.get("id");
                let serial = o.get("serial");
                if serial.as_ref().is_some_and(|s| s.len() > 20) {
                    return Err(o.error("'serial' is longer than 20 bytes".into()));
                }
                let bootindex = o.get_u32("bootindex")?;
                o.ignore(&["write-cache"]);
                DeviceRef::Blk {
                    drive,
                    id,
                    serial,
                    bootindex,
                }
            }
            "virtio-net-device" => {
                let netdev = o.require("netdev")?;
                let id = o.get("id");
                let mac = match o.get("mac") {
                    None => None,
                    Some(m) => {
                        let Some(mac) = parse_mac(&m) else {
                            return Err(o.error(format!(
                                "Property 'virtio-net-device.mac' doesn't take value '{m}'"
                            )));
                        };
                        // QEMU's -device takes it, but the guest cannot use
                        // a group address as its own (Linux picks a random
                        // one); this is QEMU's -net nic message.
                        if mac[0] & 1 != 0 {
                            return Err(o.error(
                                "NIC cannot have multicast MAC address (odd 1st byte)".into(),
                            ));
                        }
                        Some(mac)
                    }
                };
                if o.get_bool("mq")? == Some(true) {
                    return Err(o.error("mq=on: multiqueue is not supported yet".into()));
                }
                // Firmware boots in this order; moot with a direct kernel boot.
                let bootindex = o.get_u32("bootindex")?;
                // Feature switches are checked but not applied: NetConfig
                // has no field for them yet, so the device offers its own
                // fixed feature set whatever they say.
                for f in NET_FEATURE_SWITCHES {
                    o.get_bool(f)?;
                }
                DeviceRef::Net {
                    netdev,
                    id,
                    mac,
                    bootindex,
                }
            }
            "virtio-serial-device" => {
                let id = o.get("id");
                if o.get_u32("max_ports")? == Some(0) {
                    return Err(o.error("Maximum number of serial ports not specified".into()));
                }
                let bus = match &id {
                    Some(id) => format!("{id}.0"),
                    None => {
                        self.anonymous_serial_buses += 1;
                        format!("virtio-serial-bus.{}", self.anonymous_serial_buses - 1)
                    }
                };
                DeviceRef::Serial {
                    id,
                    bus,
                    port: None,
                }
            }
            "virtconsole" => {
                self.virtconsole(o)?;
                return Ok(true);
            }
            "virtserialport" => {
                return Err(
                    o.error("'virtserialport' is not supported yet (only virtconsole)".into())
                )
            }
            "virtio-balloon-device" => {
                let id = o.get("id");
                let deflate_on_oom = o.get_bool("deflate-on-oom")?.unwrap_or(false);
                for f in ["free-page-reporting", "free-page-hint"] {
                    if o.get_bool(f)? == Some(true) {
                        return Err(o.error(format!("{f}=on is not supported yet")));
                    }
                }
                if self
                    .devices
                    .iter()
                    .any(|d| matches!(d, DeviceRef::Balloon(_)))
                {
                    return Err(o.error("Only one balloon device is supported".into()));
                }
                DeviceRef::Balloon(BalloonConfig { id, deflate_on_oom })
            }
            _ => return Ok(false),
        };
        self.devices.push(dev);
        Ok(true)
    }

    /// A disk by drive id or raw node name.
    fn disk(&self, name: &str) -> Result<Drive, ConfigError> {
        if let Some(d) = self.drives.iter().find(|d| d.id == name) {
            return Ok(d.clone());
        }
        let Some(f) = self.formats.iter().find(|f| f.name == name) else {
            let what = if self.storage.iter().any(|s| s.name == name) {
                format!("drive '{name}' is a protocol node: use the driver=raw node on it")
            } else {
                format!("drive '{name}' not found")
            };
            return Err(ConfigError::new("-device", what));
        };
        let s = self
            .storage
            .iter()
            .find(|s| s.name == f.file)
            .ok_or_else(|| {
                ConfigError::new(
                    "-blockdev",
                    format!("node '{}' refers to unknown node '{}'", f.name, f.file),
                )
            })?;
        Ok(Drive {
            id: f.name.clone(),
            blockdev: true,
            path: s.path.clone(),
            readonly: f.readonly || s.readonly,
            discard: s.discard,
            cache: s.cache.clone(),
            aio: s.aio.clone(),
        })
    }

    /// Joins devices and backends; each backend serves one device.
    /// `chardev` looks up a console port's backend by chardev id.
    pub(super) fn finish(
        self,
        chardev: &dyn Fn(&str) -> Result<ChardevBackend, ConfigError>,
    ) -> Result<Vec<VirtioConfig>, ConfigError> {
        let mut out = Vec::new();
        let mut used: Vec<String> = Vec::new();
        let mut used_netdevs: Vec<&str> = Vec::new();
        let mut macs = MacTable::default();
        for d in &self.devices {
            match d {
                DeviceRef::Rng { rng, id } => {
                    let (_, filename) = self
                        .rng_objects
                        .iter()
                        .find(|(i, _)| i == rng)
                        .ok_or_else(|| {
                            ConfigError::new("-device", format!("object '{rng}' not found"))
                        })?;
                    out.push(VirtioConfig::Rng {
                        id: id.clone(),
                        filename: filename.clone(),
                    });
                }
                DeviceRef::Blk {
                    drive,
                    id,
                    serial,
                    bootindex,
                } => {
                    if used.contains(drive) {
                        return Err(ConfigError::new(
                            "-device",
                            format!("drive '{drive}' is already in use"),
                        ));
                    }
                    used.push(drive.clone());
                    let d = self.disk(drive)?;
                    out.push(VirtioConfig::Blk(DiskConfig {
                        drive: d.id,
                        blockdev: d.blockdev,
                        id: id.clone(),
                        path: d.path,
                        readonly: d.readonly,
                        serial: serial.clone(),
                        discard: d.discard,
                        cache: d.cache,
                        aio: d.aio,
                        bootindex: *bootindex,
                    }));
                }
                DeviceRef::Net {
                    netdev,
                    id,
                    mac,
                    bootindex,
                } => {
                    let prop = "Property 'virtio-net-device.netdev'";
                    let Some((_, tap)) = self.netdevs.iter().find(|(i, _)| i == netdev) else {
                        return Err(ConfigError::new(
                            "-device",
                            format!("{prop} can't find value '{netdev}'"),
                        ));
                    };
                    if used_netdevs.contains(&netdev.as_str()) {
                        return Err(ConfigError::new(
                            "-device",
                            format!("{prop} can't take value '{netdev}', it's in use"),
                        ));
                    }
                    used_netdevs.push(netdev);
                    out.push(VirtioConfig::Net(NetConfig {
                        netdev: netdev.clone(),
                        id: id.clone(),
                        mac: macs.assign(*mac),
                        tap: tap.clone(),
                        bootindex: *bootindex,
                    }));
                }
                DeviceRef::Serial { id, port, .. } => {
                    let port = match port {
                        Some(p) => Some(ConsolePort {
                            chardev: p.chardev.clone(),
                            id: p.id.clone(),
                            backend: chardev(&p.chardev)?,
                        }),
                        None => None,
                    };
                    out.push(VirtioConfig::Console(ConsoleConfig {
                        id: id.clone(),
                        port,
                    }));
                }
                DeviceRef::Balloon(b) => out.push(VirtioConfig::Balloon(b.clone())),
            }
        }
        // A -netdev no device uses is accepted, as QEMU does (it warns
        // "netdev ID has no peer"); it carries no traffic.
        Ok(out)
    }
}
