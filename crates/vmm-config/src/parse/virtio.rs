//! The options that build virtio devices: `-object rng-random`, `-drive`
//! and `-blockdev` (through [`super::block`]), `-netdev`
//! and `-device virtio-{rng,blk,net,serial,balloon,keyboard,mouse,tablet}-device` with
//! `virtconsole`, and the NICs that share `-netdev` with virtio-net
//! (`-device e1000`). Backends are collected as they come and joined to their
//! devices at the end, since QEMU accepts them in any order; devices keep
//! command-line order, which is slot order.

use std::path::PathBuf;

use super::block::BlockSpecs;
use super::netdev::{parse_mac, parse_netdev, MacTable};
use crate::chardev::ChardevBackend;
use crate::config::{
    AtaKind, BalloonConfig, ConsoleConfig, ConsolePort, DiskConfig, InputConfig, InputModel,
    NetConfig, Netdev, NicModel, ScsiConfig, VirtioConfig,
};
use crate::disk::FormatNode;
use crate::opts::Opts;
use crate::ConfigError;

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
        /// `write-cache=on|off`; None for `auto`.
        write_cache: Option<bool>,
    },
    Net {
        netdev: String,
        id: Option<String>,
        mac: Option<[u8; 6]>,
        bootindex: Option<u32>,
        /// `None` for virtio-net.
        model: Option<NicModel>,
    },
    /// A virtio-serial-device and the one virtconsole on it, if any.
    Serial {
        id: Option<String>,
        /// QEMU's name for its bus, which `virtconsole,bus=` names.
        bus: String,
        port: Option<PortRef>,
    },
    Balloon(BalloonConfig),
    Input(InputConfig),
    /// A virtio-scsi controller: its id, its place among the controllers
    /// (its bus's name is in `scsi_buses`), `num_queues=` if given.
    Scsi {
        id: Option<String>,
        n: usize,
        num_queues: Option<u32>,
    },
}

/// The devices joined to their back-ends, in command-line order: the
/// NICs that are not virtio among them (by index, with their model), for
/// the caller to take out once they are placed.
pub(super) struct Finished {
    pub(super) devices: Vec<VirtioConfig>,
    pub(super) nics: Vec<(usize, NicModel)>,
    /// The virtio-scsi controllers (by index) given no `num_queues=`: one
    /// request queue unless placed on PCI.
    pub(super) auto_queues: Vec<usize>,
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
    block: BlockSpecs,
    netdevs: Vec<(String, Netdev)>,
    /// Format nodes `blockdev-add` made (for `device_add`).
    nodes: Vec<(String, FormatNode)>,
    devices: Vec<DeviceRef>,
    /// Drives ATA devices took (a drive serves one device).
    ata_used: Vec<String>,
    /// QEMU numbers the buses of id-less virtio-serial-devices globally:
    /// `virtio-serial-bus.0`, `.1`, …
    anonymous_serial_buses: usize,
    /// The `scsi-hd`/`scsi-cd` LUNs, in command-line order.
    scsi_luns: Vec<super::scsi::LunRef>,
    /// The virtio-scsi controllers' bus names, in order.
    scsi_buses: Vec<String>,
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

impl VirtioSpecs {
    /// Specs that know only `netdevs` and the format nodes `nodes` (a
    /// hot-plugged device's view: the back-ends and nodes the monitor
    /// added).
    pub(super) fn with_backends(
        netdevs: Vec<(String, Netdev)>,
        nodes: Vec<(String, FormatNode)>,
    ) -> Self {
        VirtioSpecs {
            netdevs,
            nodes,
            ..Default::default()
        }
    }

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

    /// `-drive file=…,format=raw,if=none,id=ID,…`, or a board's drive
    /// (`if=ide`), returned.
    pub(super) fn drive(
        &mut self,
        v: &str,
    ) -> Result<Option<super::legacy::LegacyDrive>, ConfigError> {
        self.block.drive(v)
    }

    /// The block options, for the board's drives (`-drive if=ide`).
    pub(super) fn block_mut(&mut self) -> &mut BlockSpecs {
        &mut self.block
    }

    /// `-blockdev`: a `file`/`host_device` node, or a `raw` node on one.
    pub(super) fn blockdev(&mut self, v: &str) -> Result<(), ConfigError> {
        self.block.blockdev(v)
    }

    /// `-netdev tap|stream|user,id=ID,…`.
    pub(super) fn netdev(&mut self, v: &str) -> Result<(), ConfigError> {
        let (id, netdev) = parse_netdev(v)?;
        if self.netdevs.iter().any(|(i, _)| *i == id) {
            return Err(ConfigError::new(
                "-netdev",
                format!("Duplicate ID '{id}' for netdev"),
            ));
        }
        self.netdevs.push((id, netdev));
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

    /// The disk an ATA device (`ide-hd`, `ide-cd`) names by `drive=`,
    /// taken for it: call before [`VirtioSpecs::finish`], which then
    /// refuses a virtio device on the same drive.
    pub(super) fn ata_disk(
        &mut self,
        drive: &str,
        id: Option<String>,
        serial: Option<String>,
        bootindex: Option<u32>,
        write_cache: Option<bool>,
    ) -> Result<DiskConfig, ConfigError> {
        if self.ata_used.iter().any(|d| d == drive) {
            return Err(ConfigError::new(
                "-device",
                format!("drive '{drive}' is already in use"),
            ));
        }
        self.ata_used.push(drive.to_string());
        let d = self.block.resolve(drive)?;
        Ok(DiskConfig {
            drive: drive.to_string(),
            blockdev: d.blockdev,
            id,
            serial,
            write_cache: write_cache.unwrap_or(d.writeback),
            image: d.image,
            bootindex,
        })
    }

    /// `-device scsi-hd|scsi-cd,…` on a virtio-scsi controller's bus.
    pub(super) fn scsi_lun(&mut self, kind: AtaKind, o: &mut Opts) -> Result<(), ConfigError> {
        let l = super::scsi::lun(kind, o, self.scsi_buses.len())?;
        self.scsi_luns.push(l);
        Ok(())
    }

    /// `-device e1000|e1000e,…`: a NIC that is not virtio but takes its netdev
    /// and MAC as virtio-net does (and counts among its default MACs).
    pub(super) fn nic(&mut self, model: NicModel, o: &mut Opts) -> Result<(), ConfigError> {
        let dev = net_ref(model.driver(), o, Some(model))?;
        // QEMU's e1000 properties that change nothing a guest of rvirt's
        // sees: no option ROM is loaded, and the timers they tune are not
        // emulated (README of rvirt-nic).
        o.ignore(&[
            "romfile",
            "rombar",
            "autonegotiation",
            "mitigation",
            "extra_mac_registers",
            "migrate_tso_props",
        ]);
        if model == NicModel::E1000e {
            // e1000e's own: the vnet header with the peer (rvirt's card
            // does its offloads itself), VET's reset value and migration.
            o.ignore(&["vnet", "init-vet", "migrate-timadj"]);
        }
        self.devices.push(dev);
        Ok(())
    }

    /// How many devices so far (a virtconsole is part of its bus's).
    pub(super) fn device_count(&self) -> usize {
        self.devices.len()
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
                let write_cache = match o.get("write-cache").as_deref() {
                    None | Some("auto") => None,
                    Some("on") => Some(true),
                    Some("off") => Some(false),
                    Some(v) => {
                        return Err(o.error(format!(
                            "Parameter 'write-cache' does not accept value '{v}'"
                        )))
                    }
                };
                // share-rw lifts image locks, which rvirt never takes.
                o.ignore(&["share-rw"]);
                DeviceRef::Blk {
                    drive,
                    id,
                    serial,
                    bootindex,
                    write_cache,
                }
            }
            "virtio-net-device" => {
                let dev = net_ref("virtio-net-device", o, None)?;
                if o.get_bool("mq")? == Some(true) {
                    return Err(o.error("mq=on: multiqueue is not supported yet".into()));
                }
                // Feature switches are checked but not applied: NetConfig
                // has no field for them yet, so the device offers its own
                // fixed feature set whatever they say.
                for f in NET_FEATURE_SWITCHES {
                    o.get_bool(f)?;
                }
                dev
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
            "virtio-scsi-device" => {
                let id = o.get("id");
                let num_queues = super::scsi::num_queues(o)?;
                if let Some(t) = o.get("iothread") {
                    return Err(o.error(format!("iothread '{t}': iothreads are not supported")));
                }
                // Limits QEMU lets the user tune; rvirt's device keeps its
                // defaults (QEMU 7.2's).
                o.ignore(&[
                    "cmd_per_lun",
                    "max_sectors",
                    "virtqueue_size",
                    "seg_max_adjust",
                    "hotplug",
                    "param_change",
                ]);
                // QEMU names the bus of an id-less controller `scsi.N`.
                let bus = match &id {
                    Some(id) => format!("{id}.0"),
                    None => format!(
                        "scsi.{}",
                        self.devices
                            .iter()
                            .filter(|d| matches!(d, DeviceRef::Scsi { id: None, .. }))
                            .count()
                    ),
                };
                let n = self.scsi_buses.len();
                self.scsi_buses.push(bus);
                DeviceRef::Scsi { id, n, num_queues }
            }
            "virtio-keyboard-device" | "virtio-mouse-device" | "virtio-tablet-device" => {
                let model = match driver {
                    "virtio-keyboard-device" => InputModel::Keyboard,
                    "virtio-mouse-device" => InputModel::Mouse,
                    _ => InputModel::Tablet,
                };
                let id = o.get("id");
                // QEMU 7.2's default; without the wheel axis the devices
                // describe themselves differently, which rvirt does not.
                if o.get_bool("wheel-axis")? == Some(false) {
                    return Err(o.error("wheel-axis=off is not supported".into()));
                }
                DeviceRef::Input(InputConfig { id, model })
            }
            _ => return Ok(false),
        };
        self.devices.push(dev);
        Ok(true)
    }

    /// Joins devices and backends; each backend serves one device.
    /// `chardev` looks up a console port's backend by chardev id.
    pub(super) fn finish(
        mut self,
        chardev: &dyn Fn(&str) -> Result<ChardevBackend, ConfigError>,
    ) -> Result<Finished, ConfigError> {
        let mut out = Vec::new();
        let mut auto_queues = Vec::new();
        let mut models = Vec::new();
        let mut used: Vec<String> = std::mem::take(&mut self.ata_used);
        let mut used_netdevs: Vec<&str> = Vec::new();
        let mut macs = MacTable::default();
        let devices = std::mem::take(&mut self.devices);
        let scsi_luns = std::mem::take(&mut self.scsi_luns);
        let scsi_places = super::scsi::place(&scsi_luns, &self.scsi_buses)?;
        for d in &devices {
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
                    write_cache,
                } => {
                    if used.contains(drive) {
                        return Err(ConfigError::new(
                            "-device",
                            format!("drive '{drive}' is already in use"),
                        ));
                    }
                    used.push(drive.clone());
                    let d = match self.nodes.iter().find(|(n, _)| n == drive) {
                        Some((_, image)) => super::block::Resolved {
                            image: image.clone(),
                            writeback: true,
                            blockdev: true,
                        },
                        None => self.block.resolve(drive)?,
                    };
                    out.push(VirtioConfig::Blk(DiskConfig {
                        drive: drive.clone(),
                        blockdev: d.blockdev,
                        id: id.clone(),
                        serial: serial.clone(),
                        write_cache: write_cache.unwrap_or(d.writeback),
                        image: d.image,
                        bootindex: *bootindex,
                    }));
                }
                DeviceRef::Net {
                    netdev,
                    id,
                    mac,
                    bootindex,
                    model,
                } => {
                    let driver = model.map_or("virtio-net-device", NicModel::driver);
                    let prop = format!("Property '{driver}.netdev'");
                    let Some((_, backend)) = self.netdevs.iter().find(|(i, _)| i == netdev) else {
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
                        backend: backend.clone(),
                        bootindex: *bootindex,
                    }));
                    if let Some(m) = model {
                        models.push((out.len() - 1, *m));
                    }
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
                DeviceRef::Input(i) => out.push(VirtioConfig::Input(i.clone())),
                DeviceRef::Scsi { id, n, num_queues } => {
                    if num_queues.is_none() {
                        auto_queues.push(out.len());
                    }
                    let mut luns = Vec::new();
                    for (l, (c, addr)) in scsi_luns.iter().zip(&scsi_places) {
                        if c != n {
                            continue;
                        }
                        let disk = match &l.drive {
                            Some(drive) => {
                                if used.contains(drive) {
                                    return Err(ConfigError::new(
                                        "-device",
                                        format!("drive '{drive}' is already in use"),
                                    ));
                                }
                                used.push(drive.clone());
                                let d = self.block.resolve(drive)?;
                                Some(DiskConfig {
                                    drive: drive.clone(),
                                    blockdev: d.blockdev,
                                    id: l.id.clone(),
                                    serial: l.serial.clone(),
                                    write_cache: l.write_cache.unwrap_or(d.writeback),
                                    image: d.image,
                                    bootindex: l.bootindex,
                                })
                            }
                            None => None,
                        };
                        luns.push(super::scsi::config(l, *addr, disk));
                    }
                    out.push(VirtioConfig::Scsi(ScsiConfig {
                        id: id.clone(),
                        num_queues: num_queues.unwrap_or(1),
                        luns,
                    }));
                }
            }
        }
        // A -netdev no device uses is accepted, as QEMU does (it warns
        // "netdev ID has no peer"); it carries no traffic.
        Ok(Finished {
            devices: out,
            nics: models,
            auto_queues,
        })
    }
}

/// The options every NIC model takes: `netdev=`, `id=`, `mac=`,
/// `bootindex=`.
fn net_ref(driver: &str, o: &mut Opts, model: Option<NicModel>) -> Result<DeviceRef, ConfigError> {
    let netdev = o.require("netdev")?;
    let id = o.get("id");
    let mac = match o.get("mac") {
        None => None,
        Some(m) => {
            let Some(mac) = parse_mac(&m) else {
                return Err(o.error(format!("Property '{driver}.mac' doesn't take value '{m}'")));
            };
            // QEMU's -device takes it, but the guest cannot use a group
            // address as its own (Linux picks a random one); this is
            // QEMU's -net nic message.
            if mac[0] & 1 != 0 {
                return Err(o.error("NIC cannot have multicast MAC address (odd 1st byte)".into()));
            }
            Some(mac)
        }
    };
    // Firmware boots in this order; moot with a direct kernel boot.
    let bootindex = o.get_u32("bootindex")?;
    Ok(DeviceRef::Net {
        netdev,
        id,
        mac,
        bootindex,
        model,
    })
}
