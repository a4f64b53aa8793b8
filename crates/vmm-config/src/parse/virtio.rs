//! The options that build virtio devices: `-object rng-random`, `-drive`,
//! `-blockdev` (file/host_device + raw, as libvirt writes them) and
//! `-device virtio-{rng,blk}-device`. Backends are collected as they come
//! and joined to their devices at the end, since QEMU accepts them in any
//! order.

use std::path::PathBuf;

use crate::config::{DiskConfig, VirtioConfig};
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
    },
}

/// The virtio options seen so far.
#[derive(Default)]
pub(super) struct VirtioSpecs {
    rng_objects: Vec<(String, PathBuf)>,
    drives: Vec<Drive>,
    storage: Vec<StorageNode>,
    formats: Vec<FormatNode>,
    devices: Vec<DeviceRef>,
}

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
                o.ignore(&["bootindex", "write-cache"]);
                DeviceRef::Blk { drive, id, serial }
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
    pub(super) fn finish(self) -> Result<Vec<VirtioConfig>, ConfigError> {
        let mut out = Vec::new();
        let mut used: Vec<String> = Vec::new();
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
                DeviceRef::Blk { drive, id, serial } => {
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
                    }));
                }
            }
        }
        Ok(out)
    }
}
