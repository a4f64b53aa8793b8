//! Firmware options: `-bios`'s default, `-boot`, `-fw_cfg`, `-debugcon`
//! (and `-device isa-debugcon`, `-global isa-debugcon.iobase=`).

use crate::chardev::{parse_serial, ChardevBackend, SerialSpec};
use crate::config::*;
use crate::opts::Opts;
use crate::ConfigError;

/// The debug console's pieces until every `-chardev` is known.
#[derive(Default)]
pub(super) struct FirmwareSpecs {
    debugcon: Option<SerialSpec>,
    port: Option<u16>,
}

fn parse_port(o: &Opts, v: &str) -> Result<u16, ConfigError> {
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => v.parse(),
    };
    n.map_err(|_| o.error(format!("invalid port '{v}'")))
}

impl FirmwareSpecs {
    /// `-debugcon SPEC`.
    pub(super) fn debugcon(&mut self, v: &str) -> Result<(), ConfigError> {
        let spec = parse_serial(v).map_err(|e| ConfigError::new("-debugcon", e.message))?;
        self.debugcon = Some(spec);
        Ok(())
    }

    /// `-device isa-debugcon,chardev=ID[,iobase=N]`.
    pub(super) fn debugcon_device(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let chardev = o.require("chardev")?;
        if let Some(base) = o.get("iobase") {
            self.port = Some(parse_port(o, &base)?);
        }
        o.ignore(&["id", "readback"]);
        self.debugcon = Some(SerialSpec::Chardev(chardev));
        Ok(())
    }

    /// `-global isa-debugcon.iobase=N`; false for other globals.
    pub(super) fn global(&mut self, v: &str) -> Result<bool, ConfigError> {
        let Some(base) = v.strip_prefix("isa-debugcon.iobase=") else {
            return Ok(false);
        };
        let o = Opts::parse("-global", "", None)?;
        self.port = Some(parse_port(&o, base)?);
        Ok(true)
    }

    /// The debug console, with its chardev resolved by `chardev`.
    pub(super) fn finish(
        self,
        chardev: &dyn Fn(&str) -> Result<ChardevBackend, ConfigError>,
    ) -> Result<Option<DebugconConfig>, ConfigError> {
        let backend = match self.debugcon {
            None | Some(SerialSpec::None) => return Ok(None),
            Some(SerialSpec::Backend(b)) => b,
            Some(SerialSpec::Chardev(id)) => chardev(&id)?,
        };
        Ok(Some(DebugconConfig {
            port: self.port.unwrap_or(DEBUGCON_DEFAULT_PORT),
            backend,
        }))
    }
}

/// QEMU's isa-debugcon default port.
const DEBUGCON_DEFAULT_PORT: u16 = 0xe9;

/// `-boot [order=]DRIVES[,menu=on|off][,strict=on|off][,reboot-timeout=MS][,splash-time=MS]`.
pub(super) fn parse_boot(v: &str) -> Result<BootOptions, ConfigError> {
    let mut o = Opts::parse("-boot", v, Some("order"))?;
    let order = o.get("order");
    if let Some(order) = &order {
        if let Some(c) = order.chars().find(|c| !"acdnp".contains(*c)) {
            return Err(o.error(format!("invalid boot device '{c}' in order '{order}'")));
        }
    }
    if o.get("once").is_some() {
        return Err(o.error("once= is not supported yet: use order=".into()));
    }
    let menu = o.get_bool("menu")?.unwrap_or(false);
    let strict = o.get_bool("strict")?.unwrap_or(false);
    let splash_time = o.get_u32("splash-time")?;
    if splash_time.is_some_and(|t| t > 0xffff) {
        return Err(o.error("splash-time is larger than 65535".into()));
    }
    let reboot_timeout = match o.get("reboot-timeout") {
        None => None,
        Some(t) => {
            let t: i64 = t
                .parse()
                .map_err(|_| o.error(format!("invalid reboot-timeout '{t}'")))?;
            // QEMU's limits: -1 (never) up to 65535 ms.
            if !(-1..=0xffff).contains(&t) {
                return Err(o.error("reboot timeout is out of range -1..65535".into()));
            }
            Some(t)
        }
    };
    o.ignore(&["splash"]);
    o.finish()?;
    Ok(BootOptions {
        order,
        menu,
        splash_time,
        strict,
        reboot_timeout,
    })
}

/// `-fw_cfg [name=]opt/NAME,file=FILE|string=STR`.
pub(super) fn parse_fw_cfg(v: &str) -> Result<FwCfgItem, ConfigError> {
    let mut o = Opts::parse("-fw_cfg", v, Some("name"))?;
    let name = o.require("name")?;
    let file = o.get("file");
    let string = o.get("string");
    if o.get("gen_id").is_some() {
        return Err(o.error("gen_id (VM generation ID) is not supported".into()));
    }
    o.finish()?;
    // QEMU only warns; rvirt refuses, so that no item can shadow one the
    // machine serves itself (etc/…, bootorder).
    if !name.starts_with("opt/") {
        return Err(ConfigError::new(
            "-fw_cfg",
            format!("name '{name}' must start with opt/"),
        ));
    }
    if name.len() > 55 {
        return Err(ConfigError::new(
            "-fw_cfg",
            format!("name '{name}' is longer than 55 bytes"),
        ));
    }
    let source = match (file, string) {
        (Some(f), None) if !f.is_empty() => FwCfgSource::File(f.into()),
        (None, Some(s)) => FwCfgSource::String(s),
        _ => {
            return Err(ConfigError::new(
                "-fw_cfg",
                "give exactly one of file= and string=",
            ))
        }
    };
    Ok(FwCfgItem { name, source })
}

/// Decides how the VM boots: a kernel directly (`-kernel`, the fast path,
/// no firmware at all), or firmware (`-bios`, or the machine's SeaBIOS).
/// Both at once is refused: QEMU would load the kernel through fw_cfg and
/// an option ROM, which rvirt does not carry.
pub(super) fn choose_boot(cfg: &mut VmConfig) -> Result<(), ConfigError> {
    if cfg.kernel.is_some() {
        if cfg.bios.is_some() {
            return Err(ConfigError::new(
                "-bios",
                "cannot be combined with -kernel: rvirt boots a kernel directly, without firmware",
            ));
        }
        if let Some(item) = cfg.fw_cfg.first() {
            return Err(ConfigError::new(
                "-fw_cfg",
                format!(
                    "'{}': fw_cfg serves firmware, and -kernel boots without it",
                    item.name
                ),
            ));
        }
        return Ok(());
    }
    if cfg.bios.is_none() {
        cfg.bios = Some(find_firmware(default_bios(&cfg.machine)));
    }
    Ok(())
}
