//! `-device i6300esb`, `-watchdog-action`, `-action`, `-parallel` and
//! `-device isa-parallel`, collected as they come and resolved at the end
//! (a chardev may be defined after the port that names it).

use crate::chardev::{parse_serial, ChardevBackend, SerialSpec};
use crate::opts::Opts;
use crate::watchdog::{ParallelConfig, WatchdogAction, PARALLEL_IRQ, PARALLEL_PORTS};
use crate::ConfigError;

/// `-watchdog-action ACTION`.
pub(super) fn watchdog_action(v: &str) -> Result<WatchdogAction, ConfigError> {
    WatchdogAction::parse(v).ok_or_else(|| {
        ConfigError::new(
            "-watchdog-action",
            format!("Parameter 'watchdog' does not accept value '{v}'"),
        )
    })
}

/// `-action watchdog=ACTION[,…]`: the other actions (reboot, shutdown,
/// panic) are taken only at the values rvirt's machine already has.
pub(super) fn action(v: &str) -> Result<Option<WatchdogAction>, ConfigError> {
    let mut o = Opts::parse("-action", v, None)?;
    let wd =
        match o.get("watchdog") {
            Some(w) => Some(WatchdogAction::parse(&w).ok_or_else(|| {
                o.error(format!("Parameter 'watchdog' does not accept value '{w}'"))
            })?),
            None => None,
        };
    for (key, fixed) in [
        ("reboot", "reset"),
        ("shutdown", "poweroff"),
        ("panic", "shutdown"),
    ] {
        if let Some(v) = o.get(key) {
            if v != fixed {
                return Err(o.error(format!(
                    "{key}={v} is not supported (rvirt's machine does {key}={fixed})"
                )));
            }
        }
    }
    o.finish()?;
    Ok(wd)
}

/// One parallel port before its chardev is resolved.
struct Port {
    spec: SerialSpec,
    id: Option<String>,
    index: Option<u32>,
    iobase: Option<u16>,
    irq: Option<u32>,
}

/// The parallel ports seen so far: `-parallel` ones first, as QEMU
/// creates them, then the `-device isa-parallel` ones.
#[derive(Default)]
pub(super) struct ParallelSpecs {
    shorthand: Vec<SerialSpec>,
    devices: Vec<Port>,
}

fn number(o: &Opts, key: &str, v: &str, max: u64) -> Result<u64, ConfigError> {
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.ok().filter(|&n| n <= max).ok_or_else(|| {
        o.error(format!(
            "Parameter '{key}' expects a number up to {max}, not '{v}'"
        ))
    })
}

impl ParallelSpecs {
    /// `-parallel none|stdio|pty|null|file:PATH|unix:PATH,…|chardev:ID`.
    pub(super) fn shorthand(&mut self, v: &str) -> Result<(), ConfigError> {
        let spec = parse_serial(v).map_err(|e| ConfigError::new("-parallel", e.message))?;
        self.shorthand.push(spec);
        Ok(())
    }

    /// `-device isa-parallel,chardev=ID[,id=,index=,iobase=,irq=]`.
    pub(super) fn device(&mut self, o: &mut Opts) -> Result<(), ConfigError> {
        let chardev = o.require("chardev")?;
        let index = match o.get("index") {
            Some(v) => Some(number(o, "index", &v, u64::from(u32::MAX))? as u32),
            None => None,
        };
        let iobase = match o.get("iobase") {
            Some(v) => Some(number(o, "iobase", &v, 0xfff8)? as u16),
            None => None,
        };
        let irq = match o.get("irq") {
            Some(v) => Some(number(o, "irq", &v, 15)? as u32),
            None => None,
        };
        self.devices.push(Port {
            spec: SerialSpec::Chardev(chardev),
            id: o.get("id"),
            index,
            iobase,
            irq,
        });
        Ok(())
    }

    /// The ports, numbered as QEMU numbers them, with their chardevs.
    pub(super) fn finish(
        self,
        chardev: &dyn Fn(&str) -> Result<ChardevBackend, ConfigError>,
    ) -> Result<Vec<ParallelConfig>, ConfigError> {
        let mut out: Vec<ParallelConfig> = Vec::new();
        let mut next = 0u32;
        let ports = self
            .shorthand
            .into_iter()
            .map(|spec| Port {
                spec,
                id: None,
                index: None,
                iobase: None,
                irq: None,
            })
            .chain(self.devices);
        for (i, p) in ports.enumerate() {
            let (name, backend) = match p.spec {
                SerialSpec::None => continue,
                SerialSpec::Backend(b) => (format!("parallel{i}"), b),
                SerialSpec::Chardev(id) => {
                    let b = chardev(&id)?;
                    (id, b)
                }
            };
            let index = p.index.unwrap_or(next);
            next = index.saturating_add(1);
            let option = "-parallel";
            let iobase = match p.iobase {
                Some(b) => b,
                None => *PARALLEL_PORTS.get(index as usize).ok_or_else(|| {
                    ConfigError::new(
                        option,
                        format!(
                            "Max. supported number of parallel ports is {}.",
                            PARALLEL_PORTS.len()
                        ),
                    )
                })?,
            };
            if out.iter().any(|q| q.index == index) {
                return Err(ConfigError::new(
                    option,
                    format!("isa-parallel index {index}: LPT{} is taken", index + 1),
                ));
            }
            out.push(ParallelConfig {
                id: p.id.unwrap_or_else(|| format!("parallel{}", out.len())),
                chardev: name,
                backend,
                index,
                iobase,
                irq: p.irq.unwrap_or(PARALLEL_IRQ),
            });
        }
        Ok(out)
    }
}
