//! The argument loop: QEMU's options, in any order, into a [`VmConfig`].

use std::path::PathBuf;

use crate::chardev::{parse_chardev, parse_serial, ChardevBackend, SerialSpec};
use crate::config::*;
use crate::opts::Opts;
use crate::size::parse_size;
use crate::smp::SmpRequest;
use crate::usb::UsbDeviceModel;
use crate::ConfigError;

mod ata;
pub(crate) mod block;
mod display;
mod firmware;
mod hotplug;
mod legacy;
mod netdev;
mod pci;
mod scsi;
mod usb;
mod virtio;
mod watchdog;

pub use display::VGA_ROMFILE;
pub use hotplug::{parse_device_add, HotplugDevice};
pub use netdev::parse_netdev;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run(Box<VmConfig>),
    Version,
    Help,
}

/// Options accepted and ignored because they change nothing for rvirt's
/// machine, with the reason shown in `-help`.
pub const IGNORED_OPTIONS: &[(&str, &str)] = &[
    ("-no-user-config", "rvirt reads no configuration files"),
    ("-nodefaults", "rvirt adds no default devices"),
    ("-display none", "there is no display"),
    (
        "-audiodev none,id=ID",
        "there is no sound (libvirt gives one to -vnc)",
    ),
    (
        "-nographic",
        "there is no display (also means -serial stdio)",
    ),
    ("-realtime mlock=off", "guest memory is never locked"),
    ("-overcommit mem-lock=off", "guest memory is never locked"),
    ("-rtc base=utc[,driftfix=slew]", "the RTC runs on UTC"),
    (
        "-global kvm-pit.lost_tick_policy=delay",
        "the in-kernel PIT's default",
    ),
    (
        "-global PIIX4_PM.disable_s3=1 (and disable_s4, ICH9-LPC's)",
        "the DSDT offers no S3 or S4",
    ),
    (
        "-global …acpi-pci-hotplug-with-bridge-support=off",
        "hot-plug is native PCI Express on q35 root ports; there is no ACPI PCI hot-plug",
    ),
    ("-no-hpet", "there is no HPET"),
    ("-msg timestamp=on", "log lines carry timestamps"),
    ("-enable-kvm, -accel kvm", "KVM is the only accelerator"),
];

/// Options that take an argument.
const WITH_ARG: &[&str] = &[
    "-name",
    "-machine",
    "-M",
    "-accel",
    "-cpu",
    "-m",
    "-smp",
    "-uuid",
    "-kernel",
    "-initrd",
    "-append",
    "-bios",
    "-fw_cfg",
    "-debugcon",
    "-serial",
    "-chardev",
    "-mon",
    "-qmp",
    "-qmp-pretty",
    "-monitor",
    "-device",
    "-object",
    "-blockdev",
    "-drive",
    "-netdev",
    "-nic",
    "-net",
    "-pidfile",
    "-D",
    "-display",
    "-vnc",
    "-audiodev",
    "-realtime",
    "-overcommit",
    "-rtc",
    "-global",
    "-boot",
    "-msg",
    "-sandbox",
    "-runas",
    "-add-fd",
    "-watchdog-action",
    "-action",
    "-parallel",
    "-d",
    "-vga",
    "-L",
    "-cdrom",
    "-hda",
    "-hdb",
    "-hdc",
    "-hdd",
];

/// Options that take none.
const FLAGS: &[&str] = &[
    "-S",
    "-no-reboot",
    "-no-shutdown",
    "-daemonize",
    "-version",
    "-help",
    "-h",
    "-no-user-config",
    "-nodefaults",
    "-nographic",
    "-no-hpet",
    "-enable-kvm",
    "-no-acpi",
];

/// The usage text for `-help`.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: rvirt-vmm [options]\n\
         QEMU-compatible options for a KVM x86_64 guest booted from a kernel:\n\
         \x20 -name [guest=]NAME[,debug-threads=on]  VM name\n\
         \x20 -machine|-M TYPE[,accel=kvm]           pc, q35, microvm, pc-i440fx-X.Y, … (one x86 machine)\n\
         \x20 -accel kvm, -enable-kvm                 KVM (the only accelerator)\n\
         \x20 -cpu MODEL[,+FEAT|-FEAT|FEAT=on|off]    host, max, qemu64, kvm64, Nehalem … Skylake-Server-noTSX-IBRS\n\
         \x20 -m [size=]SIZE                          RAM: 5000 (MiB), 512M, 4G\n\
         \x20 -smp [cpus=]N[,sockets=,dies=,cores=,threads=,maxcpus=]\n\
         \x20 -uuid UUID\n\
         \x20 -kernel FILE                            ELF vmlinux (PVH or 64-bit entry) or bzImage\n\
         \x20 -initrd FILE, -append CMDLINE\n\
         \x20 -serial stdio|pty|null|none|file:PATH|unix:PATH,server=on,wait=off|chardev:ID\n\
         \x20 -chardev stdio|file|pty|socket|null,id=ID[,path=…,server=on,wait=off]\n\
         \x20 -device isa-serial,chardev=ID[,id=…]    a serial port on a chardev\n\
         \x20 -device pvpanic                         QEMU's pvpanic ISA port (0x505)\n\
         \x20 -device qemu-xhci[,id=,p2=,p3=,bus=,addr=]  QEMU's xHCI USB controller\n\
         \x20 -device usb-tablet|usb-kbd|usb-mouse[,id=,bus=ID.0,port=N]  USB HID devices on it\n\
         \x20 -device bochs-display[,vgamem=SIZE,bus=,addr=]  a display, shown by -vnc\n\
         \x20 -device VGA[,vgamem_mb=N,romfile=PATH,bus=,addr=]  QEMU's std VGA, shown by -vnc\n\
         \x20 -vga std|none              std VGA on the root bus (none: no display)\n\
         \x20 -object rng-random,id=ID,filename=FILE  an entropy source, for virtio-rng\n\
         \x20 -device virtio-rng-device,rng=ID\n\
         \x20 -device virtio-keyboard-device|virtio-mouse-device|virtio-tablet-device[,id=]  virtio-input\n\
         \x20 -drive file=IMG[,if=ide,index=N|bus=B,unit=U,media=disk|cdrom]  a drive of pc's IDE, q35's AHCI\n\
         \x20 -cdrom FILE, -hda|-hdb|-hdc|-hdd FILE   the same at index 2 (a CD-ROM), 0, 1, 2, 3\n\
         \x20 -drive file=IMG,format=raw,if=none,id=ID[,readonly=on,discard=unmap,\n\
         \x20        cache=none|writeback|writethrough|directsync|unsafe,aio=threads|native|io_uring]\n\
         \x20 -blockdev driver=file|host_device,filename=IMG,node-name=N[,cache.direct=,cache.no-flush=,aio=]\n\
         \x20 -blockdev driver=raw,file=N,node-name=ID[,read-only=on,discard=unmap]\n\
         \x20 -device virtio-blk-device,drive=ID[,serial=S,write-cache=on|off]\n\
         \x20 -qmp unix:PATH,server=on,wait=off | stdio\n\
         \x20 -mon chardev=ID,mode=control[,pretty=on]\n\
         \x20 -vnc [HOST]:DISPLAY|unix:PATH|none[,password=on,share=allow-exclusive|force-shared|ignore,\n\
         \x20        to=DISPLAY,connections=N]  the VNC console (a blank 640x480 screen: no display device yet)\n\
         \x20 -S                                      start with the vCPUs stopped\n\
         \x20 -no-reboot                              exit instead of rebooting\n\
         \x20 -no-shutdown                            stop instead of exiting on guest power-off\n\
         \x20 -daemonize, -pidfile FILE, -D LOGFILE\n\
         \x20 -sandbox on[,obsolete=,elevateprivileges=,spawn=,resourcecontrol=]\n\
         \x20                                         seccomp filters per thread and Landlock\n\
         \x20 -runas USER|UID:GID                     drop to USER once everything is open\n\
         \x20 -add-fd fd=N,set=M[,opaque=S]          a passed descriptor for /dev/fdset/M\n\
         \x20 -version, -help\n\
         Accepted and ignored (they change nothing for this machine):\n",
    );
    for (opt, why) in IGNORED_OPTIONS {
        s.push_str(&format!("  {opt:<42} {why}\n"));
    }
    s
}

#[derive(Default)]
struct Builder {
    cfg: VmConfig,
    smp: Option<SmpRequest>,
    serial_specs: Vec<SerialSpec>,
    /// `-device isa-serial,chardev=ID,id=ID` entries.
    /// `-device isa-serial,chardev=ID,id=ID,index=N` entries.
    isa_serials: Vec<(String, Option<String>, Option<u32>)>,
    monitor_refs: Vec<(String, Option<String>, bool, bool)>,
    nographic: bool,
    /// `-machine graphics=off`: firmware's console on the serial port.
    nographic_firmware: bool,
    virtio: virtio::VirtioSpecs,
    firmware: firmware::FirmwareSpecs,
    pci: pci::PciSpecs,
    ata: ata::AtaSpecs,
    /// `-drive if=ide`, `-cdrom`, `-hda`…: the board's drives.
    legacy: legacy::LegacySpecs,
    parallel: watchdog::ParallelSpecs,
    watchdog_seen: bool,
    usb: usb::UsbSpecs,
}

/// Parses rvirt-vmm's arguments (without the program name).
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Action, ConfigError> {
    let mut b = Builder::default();
    let mut i = 0;
    while i < args.len() {
        let raw = args[i].as_ref();
        // QEMU accepts --opt as -opt.
        let opt = match raw.strip_prefix("--") {
            Some(rest) if !rest.is_empty() => format!("-{rest}"),
            _ => raw.to_string(),
        };
        if !opt.starts_with('-') || opt == "-" {
            return Err(ConfigError::new(
                raw,
                "invalid option (positional arguments are not supported; use -kernel)",
            ));
        }
        if FLAGS.contains(&opt.as_str()) {
            match opt.as_str() {
                "-version" => return Ok(Action::Version),
                "-help" | "-h" => return Ok(Action::Help),
                _ => b.flag(&opt),
            }
            i += 1;
            continue;
        }
        if !WITH_ARG.contains(&opt.as_str()) {
            return Err(ConfigError::new(&opt, "invalid option"));
        }
        let value = args
            .get(i + 1)
            .map(|v| v.as_ref())
            .ok_or_else(|| ConfigError::new(&opt, "requires an argument"))?;
        b.option(&opt, value)?;
        i += 2;
    }
    b.finish().map(|c| Action::Run(Box::new(c)))
}

fn path(opt: &str, v: &str) -> Result<PathBuf, ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::new(opt, "empty file name"));
    }
    Ok(PathBuf::from(v))
}

fn valid_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Machine types that all mean rvirt's one x86 machine.
fn known_machine(t: &str) -> bool {
    crate::caps::is_known_machine(t)
}

impl Builder {
    fn flag(&mut self, opt: &str) {
        match opt {
            "-S" => self.cfg.start_paused = true,
            "-no-reboot" => self.cfg.no_reboot = true,
            "-no-shutdown" => self.cfg.no_shutdown = true,
            "-daemonize" => self.cfg.daemonize = true,
            "-nographic" => self.nographic = true,
            "-no-acpi" => self.cfg.acpi = false,
            // -no-user-config, -nodefaults, -no-hpet, -enable-kvm: nothing
            // to change.
            _ => {}
        }
    }

    fn option(&mut self, opt: &str, v: &str) -> Result<(), ConfigError> {
        match opt {
            "-name" => {
                let mut o = Opts::parse(opt, v, Some("guest"))?;
                let name = o.require("guest")?;
                o.ignore(&["debug-threads", "process"]);
                o.finish()?;
                self.cfg.name = Some(name);
            }
            "-machine" | "-M" => {
                let mut o = Opts::parse(opt, v, Some("type"))?;
                if let Some(t) = o.get("type") {
                    let chipset = Chipset::of(&t)
                        .filter(|_| known_machine(&t))
                        .ok_or_else(|| o.error(format!("unsupported machine type '{t}'")))?;
                    self.cfg.machine = t;
                    self.cfg.chipset = chipset;
                }
                if let Some(acpi) = o.get_bool("acpi")? {
                    self.cfg.acpi = acpi;
                }
                // graphics=off is libvirt's <bios useserial='yes'/> (see
                // VmConfig::graphics).
                if o.get_bool("graphics")? == Some(false) {
                    self.nographic_firmware = true;
                }
                if let Some(a) = o.get("accel") {
                    if a != "kvm" {
                        return Err(
                            o.error(format!("accelerator '{a}' is not supported: only kvm"))
                        );
                    }
                }
                // Machine properties libvirt sets that describe what rvirt's
                // machine already is (or lacks).
                o.ignore(&[
                    "usb",
                    "vmport",
                    "dump-guest-core",
                    "mem-merge",
                    "hpet",
                    "smm",
                    "pit",
                    "pic",
                    "rtc",
                    "isa-serial",
                    "i8042",
                    "kernel-irqchip",
                    "memory-backend",
                    "suppress-vmdesc",
                ]);
                o.finish()?;
            }
            "-accel" => {
                let mut o = Opts::parse(opt, v, Some("accel"))?;
                let a = o.require("accel")?;
                if a != "kvm" {
                    return Err(o.error(format!("accelerator '{a}' is not supported: only kvm")));
                }
                o.ignore(&["kernel-irqchip"]);
                o.finish()?;
            }
            "-cpu" => self.cfg.cpu = parse_cpu(v)?,
            "-m" => {
                let mut o = Opts::parse(opt, v, Some("size"))?;
                let size = o.require("size")?;
                if o.get("maxmem").is_some() || o.get("slots").is_some() {
                    return Err(
                        o.error("memory hotplug (slots, maxmem) is not supported yet".into())
                    );
                }
                o.finish()?;
                let bytes = parse_size(&size, 1 << 20).ok_or_else(|| {
                    ConfigError::new(opt, format!("invalid memory size '{size}'"))
                })?;
                if bytes == 0 {
                    return Err(ConfigError::new(
                        opt,
                        "memory size must be greater than zero",
                    ));
                }
                // QEMU rounds RAM up to a whole number of 8 KiB; rvirt
                // maps whole pages, so round up to 4 KiB.
                self.cfg.mem_size = bytes.checked_next_multiple_of(4096).ok_or_else(|| {
                    ConfigError::new(opt, format!("invalid memory size '{size}'"))
                })?;
            }
            "-smp" => {
                let mut o = Opts::parse(opt, v, Some("cpus"))?;
                let r = SmpRequest {
                    cpus: o.get_u32("cpus")?,
                    sockets: o.get_u32("sockets")?,
                    dies: o.get_u32("dies")?,
                    cores: o.get_u32("cores")?,
                    threads: o.get_u32("threads")?,
                    maxcpus: o.get_u32("maxcpus")?,
                };
                if o.get("clusters").is_some_and(|c| c != "1") {
                    return Err(o.error("clusters are not supported on x86".into()));
                }
                o.finish()?;
                self.smp = Some(r);
            }
            "-uuid" => {
                if !valid_uuid(v) {
                    return Err(ConfigError::new(opt, format!("invalid UUID '{v}'")));
                }
                self.cfg.uuid = Some(v.to_ascii_lowercase());
            }
            "-kernel" => self.cfg.kernel = Some(path(opt, v)?),
            "-initrd" => self.cfg.initrd = Some(path(opt, v)?),
            "-append" => self.cfg.append = Some(v.to_string()),
            "-serial" => self.serial_specs.push(parse_serial(v)?),
            "-chardev" => {
                let c = parse_chardev(v)?;
                if self.cfg.chardevs.iter().any(|x| x.id == c.id) {
                    return Err(ConfigError::new(
                        opt,
                        format!("duplicate chardev id '{}'", c.id),
                    ));
                }
                self.cfg.chardevs.push(c);
            }
            "-mon" => {
                let mut o = Opts::parse(opt, v, Some("chardev"))?;
                let chardev = o.require("chardev")?;
                let id = o.get("id");
                let control = match o.get("mode").as_deref() {
                    None | Some("readline") => false,
                    Some("control") => true,
                    Some(m) => return Err(o.error(format!("invalid monitor mode '{m}'"))),
                };
                let pretty = o.get_bool("pretty")?.unwrap_or(false);
                o.finish()?;
                if !control {
                    return Err(ConfigError::new(
                        opt,
                        "the human monitor (mode=readline) is not supported; use mode=control",
                    ));
                }
                self.monitor_refs.push((chardev, id, control, pretty));
            }
            "-qmp" | "-qmp-pretty" => {
                let backend = match parse_serial(v).map_err(|e| ConfigError::new(opt, e.message))? {
                    SerialSpec::Backend(b) => b,
                    SerialSpec::Chardev(id) => {
                        let pretty = opt == "-qmp-pretty";
                        self.monitor_refs.push((id, None, true, pretty));
                        return Ok(());
                    }
                    SerialSpec::None => return Ok(()),
                };
                let n = self.cfg.monitors.len();
                self.cfg.monitors.push(MonitorConfig {
                    id: format!("compat_monitor{n}"),
                    chardev: format!("compat_monitor{n}"),
                    backend,
                    control: true,
                    pretty: opt == "-qmp-pretty",
                });
            }
            "-monitor" => {
                if v != "none" {
                    return Err(ConfigError::new(
                        opt,
                        "the human monitor is not supported; use -qmp",
                    ));
                }
            }
            "-device" => self.device(v)?,
            "-object" => self.virtio.object(v)?,
            "-drive" => {
                if let Some(d) = self.virtio.drive(v)? {
                    self.legacy.push(d);
                }
            }
            "-cdrom" => self.legacy.push(legacy::shorthand("-cdrom", v)?),
            "-hda" => self.legacy.push(legacy::shorthand("-hda", v)?),
            "-hdb" => self.legacy.push(legacy::shorthand("-hdb", v)?),
            "-hdc" => self.legacy.push(legacy::shorthand("-hdc", v)?),
            "-hdd" => self.legacy.push(legacy::shorthand("-hdd", v)?),
            "-blockdev" => self.virtio.blockdev(v)?,
            "-netdev" => self.virtio.netdev(v)?,
            // `none` only says "no default NIC", which rvirt never adds.
            "-nic" | "-net" if v == "none" => {}
            "-nic" | "-net" => {
                return Err(ConfigError::new(
                    opt,
                    "not supported: use -netdev tap,id=ID with -device virtio-net-device,netdev=ID",
                ));
            }
            "-pidfile" => self.cfg.pidfile = Some(path(opt, v)?),
            "-D" => self.cfg.logfile = Some(path(opt, v)?),
            "-vga" => self.vga(v)?,
            "-display" => {
                let mut o = Opts::parse(opt, v, Some("type"))?;
                if o.require("type")? != "none" {
                    return Err(o.error("there is no display: only 'none' is supported".into()));
                }
                o.finish()?;
            }
            "-vnc" => self.cfg.vnc = Some(crate::vnc::parse_vnc(v)?),
            // libvirt gives every VNC server an audio back-end; rvirt has no
            // sound, so only `none` (nothing to play) is accepted.
            "-audiodev" => {
                let mut o = Opts::parse(opt, v, Some("driver"))?;
                let driver = o.require("driver")?;
                if driver != "none" {
                    return Err(o.error(format!(
                        "driver '{driver}' is not supported: there is no sound, only 'none'"
                    )));
                }
                o.require("id")?;
                o.finish()?;
            }
            "-realtime" | "-overcommit" => {
                let mut o = Opts::parse(opt, v, None)?;
                if o.get_bool("mlock")? == Some(true) || o.get_bool("mem-lock")? == Some(true) {
                    return Err(o.error("locking guest memory is not supported yet".into()));
                }
                o.ignore(&["cpu-pm"]);
                o.finish()?;
            }
            "-rtc" => {
                let mut o = Opts::parse(opt, v, None)?;
                if let Some(base) = o.get("base") {
                    if base != "utc" {
                        return Err(o.error(format!(
                            "base '{base}' is not supported: the RTC runs on UTC"
                        )));
                    }
                }
                o.ignore(&["driftfix", "clock"]);
                o.finish()?;
            }
            "-global" if self.firmware.global(v)? => {}
            "-global" => global(v)?,
            "-boot" => self.cfg.boot = firmware::parse_boot(v)?,
            "-bios" => self.cfg.bios = Some(path(opt, v)?),
            "-fw_cfg" => self.cfg.fw_cfg.push(firmware::parse_fw_cfg(v)?),
            "-debugcon" => self.firmware.debugcon(v)?,
            "-sandbox" => self.cfg.sandbox = crate::sandbox::parse_sandbox(v)?,
            "-runas" => self.cfg.runas = Some(crate::sandbox::parse_runas(v)?),
            "-add-fd" => self.cfg.add_fds.push(crate::sandbox::parse_add_fd(v)?),
            "-watchdog-action" => self.cfg.watchdog_action = watchdog::watchdog_action(v)?,
            "-action" => {
                if let Some(a) = watchdog::action(v)? {
                    self.cfg.watchdog_action = a;
                }
            }
            "-parallel" => self.parallel.shorthand(v)?,
            "-msg" | "-d" | "-L" => {}
            _ => return Err(ConfigError::new(opt, "invalid option")),
        }
        Ok(())
    }

    fn device(&mut self, v: &str) -> Result<(), ConfigError> {
        let mut o = Opts::parse("-device", v, Some("driver"))?;
        let driver = o.require("driver")?;
        match driver.as_str() {
            "isa-serial" => {
                let chardev = o.require("chardev")?;
                let id = o.get("id");
                let index = o.get_u32("index")?;
                o.ignore(&["iobase", "irq"]);
                o.finish()?;
                self.isa_serials.push((chardev, id, index));
            }
            "isa-debugcon" => self.firmware.debugcon_device(&mut o)?,
            "isa-parallel" => {
                self.parallel.device(&mut o)?;
                o.finish()?;
            }
            "i6300esb" => {
                if self.watchdog_seen {
                    return Err(o.error("only one i6300esb watchdog is supported".into()));
                }
                self.watchdog_seen = true;
                self.pci.watchdog(&mut o)?;
                o.finish()?;
            }
            "qemu-xhci" => {
                let n = self.usb.controllers.len();
                let id = self.pci.xhci(&mut o, n)?;
                self.usb.controller(id, &mut o)?;
                o.finish()?;
            }
            "usb-tablet" | "usb-kbd" | "usb-mouse" => {
                let model = match driver.as_str() {
                    "usb-tablet" => UsbDeviceModel::Tablet,
                    "usb-kbd" => UsbDeviceModel::Keyboard,
                    _ => UsbDeviceModel::Mouse,
                };
                self.usb.device(model, &mut o)?;
                o.finish()?;
            }
            "pvpanic" => {
                if let Some(port) = o.get("ioport") {
                    if port != "1285" && port != "0x505" {
                        return Err(o.error("only the default ioport 0x505 is supported".into()));
                    }
                }
                o.ignore(&["id", "events"]);
                o.finish()?;
                self.cfg.pvpanic = true;
            }
            "pcie-root-port" => {
                self.pci.root_port(&mut o)?;
                o.finish()?;
            }
            "pci-bridge" => {
                self.pci.pci_bridge(PortModel::PciBridge, &mut o)?;
                o.finish()?;
            }
            "pcie-pci-bridge" => {
                self.pci.pci_bridge(PortModel::PcieToPciBridge, &mut o)?;
                o.finish()?;
            }
            "ich9-ahci" | "ahci" => {
                let n = self.ata.controller_count();
                self.pci.ahci(&driver, &mut o, n)?;
                self.ata.controller(&mut o);
                o.finish()?;
            }
            "ide-hd" => {
                self.ata.drive(AtaKind::Disk, &mut o)?;
                o.finish()?;
            }
            "ide-cd" => {
                self.ata.drive(AtaKind::Cdrom, &mut o)?;
                o.finish()?;
            }
            "scsi-hd" | "scsi-cd" => {
                let kind = if driver == "scsi-hd" {
                    AtaKind::Disk
                } else {
                    AtaKind::Cdrom
                };
                self.virtio.scsi_lun(kind, &mut o)?;
                o.finish()?;
            }
            "bochs-display" => {
                if self.cfg.display.is_some() {
                    return Err(o.error(
                        "only one display device is supported (the VNC console shows one)".into(),
                    ));
                }
                let vgamem = match o.get("vgamem") {
                    Some(v) => crate::size::parse_size(&v, 1)
                        .ok_or_else(|| o.error(format!("vgamem: '{v}' is not a size")))?,
                    None => 16 << 20,
                };
                let vgamem = match vgamem {
                    v if v < 4 << 20 => Err("video memory too small"),
                    v if v > 256 << 20 => Err("video memory too big"),
                    v => Ok(v.next_power_of_two()),
                }
                .map_err(|e| o.error(format!("bochs-display: {e}")))?;
                // The EDID is always there (QEMU's default); asking for
                // none changes nothing a guest relies on.
                o.get_bool("edid")?;
                let id = self.pci.display(driver.as_str(), &mut o)?;
                o.finish()?;
                self.cfg.display = Some(DisplayConfig {
                    model: DisplayModel::Bochs,
                    id,
                    vgamem,
                    addr: PciAddr {
                        bus: PciBus::Root,
                        slot: 0,
                        function: 0,
                        multifunction: false,
                    },
                    romfile: None,
                });
            }
            "VGA" => {
                self.std_vga(&mut o)?;
                o.finish()?;
            }
            "e1000" => {
                let index = self.virtio.device_count();
                self.pci.device("e1000", &mut o, index)?;
                self.virtio.nic(NicModel::E1000, &mut o)?;
                o.finish()?;
            }
            "e1000e" => {
                let index = self.virtio.device_count();
                self.pci.device("e1000e", &mut o, index)?;
                self.virtio.nic(NicModel::E1000e, &mut o)?;
                o.finish()?;
            }
            d if d.ends_with("-pci-transitional") => {
                return Err(o.error(format!(
                    "'{d}': rvirt's virtio-pci devices are modern only (no legacy interface); use '{}'",
                    d.trim_end_matches("-transitional")
                )));
            }
            d if virtio_pci_base(d).is_some() => {
                let base = virtio_pci_base(d).unwrap_or_default();
                virtio_pci_options(&mut o)?;
                let index = self.virtio.device_count();
                self.pci.device(d, &mut o, index)?;
                if !self.virtio.device(&base, &mut o)? {
                    return Err(o.error(format!("device '{d}' is not supported")));
                }
                o.finish()?;
            }
            d if self.virtio.device(d, &mut o)? => o.finish()?,
            d if d.starts_with("virtio") => {
                return Err(o.error(format!(
                    "'{d}' is not supported yet (virtio devices are being added)"
                )));
            }
            d => return Err(o.error(format!("device '{d}' is not supported"))),
        }
        Ok(())
    }

    fn chardev(&self, id: &str, opt: &str) -> Result<ChardevBackend, ConfigError> {
        self.cfg
            .chardevs
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.backend.clone())
            .ok_or_else(|| ConfigError::new(opt, format!("chardev '{id}' not found")))
    }

    fn finish(mut self) -> Result<VmConfig, ConfigError> {
        self.cfg.smp = self.smp.unwrap_or_default().resolve()?;
        // As QEMU: firmware uses the display unless told not to. Without
        // one that has a VGA BIOS (bochs-display has none in rvirt) it
        // mirrors its console to the serial port: nothing could show it.
        let firmware_display = self
            .cfg
            .display
            .as_ref()
            .is_some_and(|d| d.model == DisplayModel::Vga && d.romfile.is_some());
        self.cfg.graphics = firmware_display && !self.nographic && !self.nographic_firmware;
        if self.nographic && self.serial_specs.is_empty() && self.isa_serials.is_empty() {
            self.serial_specs
                .push(SerialSpec::Backend(ChardevBackend::Stdio));
        }
        let mut serials: Vec<SerialConfig> = Vec::new();
        // QEMU numbers the ports as it creates them: the -serial ones first,
        // then each isa-serial takes its `index` or the next number.
        let mut next = 0;
        for (i, spec) in self.serial_specs.iter().enumerate() {
            let (chardev, backend) = match spec {
                SerialSpec::None => continue,
                SerialSpec::Backend(b) => (format!("serial{i}"), b.clone()),
                SerialSpec::Chardev(id) => (id.clone(), self.chardev(id, "-serial")?),
            };
            serials.push(SerialConfig {
                id: format!("serial{}", serials.len()),
                chardev,
                backend,
                index: next,
            });
            next += 1;
        }
        for (chardev, id, index) in &self.isa_serials {
            let backend = self.chardev(chardev, "-device")?;
            let id = id
                .clone()
                .unwrap_or_else(|| format!("serial{}", serials.len()));
            let index = index.unwrap_or(next);
            next += 1;
            if index >= 4 {
                return Err(ConfigError::new(
                    "-device",
                    "Max. supported number of ISA serial ports is 4.",
                ));
            }
            if serials.iter().any(|s| s.index == index) {
                return Err(ConfigError::new(
                    "-device",
                    format!("isa-serial index {index}: COM{} is taken", index + 1),
                ));
            }
            serials.push(SerialConfig {
                chardev: chardev.clone(),
                id,
                backend,
                index,
            });
        }
        if serials.len() > 4 || serials.iter().any(|s| s.index >= 4) {
            return Err(ConfigError::new(
                "-serial",
                "at most 4 serial ports (COM1-COM4)",
            ));
        }
        self.cfg.serials = serials;
        let (placed, ports, ahci_placed, display, watchdog, xhci_placed) =
            std::mem::take(&mut self.pci).resolve(self.cfg.chipset)?;
        self.cfg.watchdog = watchdog.map(|(id, addr)| crate::WatchdogConfig { id, addr });
        let usb = std::mem::take(&mut self.usb);
        self.cfg.usb_controllers = usb.controllers;
        for (i, addr) in xhci_placed {
            self.cfg.usb_controllers[i].addr = addr;
        }
        self.cfg.usb_devices = usb.devices;
        let parallel = std::mem::take(&mut self.parallel);
        self.cfg.parallels = parallel.finish(&|id| self.chardev(id, "-device"))?;
        let mut virtio = std::mem::take(&mut self.virtio);
        // The board makes its drives before any -device.
        let board =
            std::mem::take(&mut self.legacy).finish(self.cfg.chipset, virtio.block_mut())?;
        self.ata.board_drives(board);
        let (ahci, ata_drives) =
            std::mem::take(&mut self.ata).finish(self.cfg.chipset, &ahci_placed, &mut virtio)?;
        self.cfg.ahci = ahci;
        self.cfg.ata_drives = ata_drives;
        let finished = virtio.finish(&|id| self.chardev(id, "-device"))?;
        if let (Some(d), Some(addr)) = (self.cfg.display.as_mut(), display) {
            d.addr = addr;
        }
        let mut addrs = vec![DeviceAddr::Mmio; finished.devices.len()];
        for (i, addr) in placed {
            addrs[i] = addr;
        }
        // The NICs that are not virtio leave the virtio list, placed.
        let mut models = finished.nics.into_iter().peekable();
        let mut devices = finished.devices;
        for &i in &finished.auto_queues {
            if let (VirtioConfig::Scsi(s), DeviceAddr::Pci { .. }) = (&mut devices[i], &addrs[i]) {
                s.num_queues = scsi::auto_queues(self.cfg.smp.cpus);
            }
        }
        for (i, (dev, addr)) in devices.into_iter().zip(addrs).enumerate() {
            match (models.next_if(|&(at, _)| at == i), dev, addr) {
                (Some((_, model)), VirtioConfig::Net(net), DeviceAddr::Pci { addr }) => {
                    // Behind a port an e1000 would need the port's I/O
                    // window for its BAR 1, which rvirt's placement does
                    // not open; an e1000e needs memory only (its I/O BAR
                    // stays unassigned there, and Linux's driver never
                    // uses it).
                    if addr.bus != PciBus::Root && model == NicModel::E1000 {
                        return Err(ConfigError::new(
                            "-device",
                            format!(
                                "{} '{}' must sit on the root bus: behind a root port it is not supported yet",
                                model.driver(),
                                net.id.as_deref().unwrap_or(&net.netdev)
                            ),
                        ));
                    }
                    self.cfg.nics.push(PciNicConfig { model, net, addr })
                }
                (_, dev, addr) => {
                    self.cfg.virtio.push(dev);
                    self.cfg.virtio_addrs.push(addr);
                }
            }
        }
        self.cfg.root_ports = ports;
        for (chardev, id, control, pretty) in &self.monitor_refs {
            let backend = self.chardev(chardev, "-mon")?;
            self.cfg.monitors.push(MonitorConfig {
                id: id.clone().unwrap_or_else(|| chardev.clone()),
                chardev: chardev.clone(),
                backend,
                control: *control,
                pretty: *pretty,
            });
        }
        let console_ports: Vec<&ConsolePort> = self
            .cfg
            .virtio
            .iter()
            .filter_map(|v| match v {
                VirtioConfig::Console(c) => c.port.as_ref(),
                _ => None,
            })
            .collect();
        // A chardev may serve one frontend only, as in QEMU.
        let mut users: Vec<&str> = self
            .cfg
            .serials
            .iter()
            .map(|s| s.chardev.as_str())
            .collect();
        users.extend(self.monitor_refs.iter().map(|m| m.0.as_str()));
        users.extend(console_ports.iter().map(|p| p.chardev.as_str()));
        users.sort_unstable();
        if let Some(w) = users.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::new(
                "-chardev",
                format!("chardev '{}' is already in use", w[0]),
            ));
        }
        let stdio_users = self
            .cfg
            .serials
            .iter()
            .map(|s| &s.backend)
            .chain(self.cfg.monitors.iter().map(|m| &m.backend))
            .chain(console_ports.iter().map(|p| &p.backend))
            .filter(|b| **b == ChardevBackend::Stdio)
            .count();
        if stdio_users > 1 {
            return Err(ConfigError::new(
                "-serial",
                "cannot use stdio by multiple character devices",
            ));
        }
        if self.cfg.daemonize && stdio_users > 0 {
            return Err(ConfigError::new(
                "-daemonize",
                "cannot be used with stdio character devices",
            ));
        }
        if self.cfg.initrd.is_some() && self.cfg.kernel.is_none() {
            return Err(ConfigError::new("-initrd", "only allowed with -kernel"));
        }
        if self.cfg.append.is_some() && self.cfg.kernel.is_none() {
            return Err(ConfigError::new("-append", "only allowed with -kernel"));
        }
        let firmware = std::mem::take(&mut self.firmware);
        self.cfg.debugcon = firmware.finish(&|id| self.chardev(id, "-debugcon"))?;
        firmware::choose_boot(&mut self.cfg)?;
        Ok(self.cfg)
    }
}

/// The virtio-*-device a virtio-*-pci (or -pci-non-transitional) driver
/// puts on PCI.
fn virtio_pci_base(driver: &str) -> Option<String> {
    let stem = driver
        .strip_suffix("-pci-non-transitional")
        .or_else(|| driver.strip_suffix("-pci"))?;
    stem.starts_with("virtio-")
        .then(|| format!("{stem}-device"))
}

/// The virtio-pci proxy's own properties: what rvirt's modern-only
/// transport is is accepted, the rest refused.
fn virtio_pci_options(o: &mut Opts) -> Result<(), ConfigError> {
    match o.get("disable-legacy").as_deref() {
        None | Some("on" | "auto" | "true") => {}
        Some(v) => {
            return Err(o.error(format!(
                "disable-legacy={v}: the legacy virtio-pci interface is not emulated"
            )))
        }
    }
    if o.get_bool("disable-modern")? == Some(true) {
        return Err(o.error("disable-modern=on: rvirt's virtio-pci is modern only".into()));
    }
    // Kicks always go through ioeventfds; off changes nothing a guest sees.
    o.get_bool("ioeventfd")?;
    // No option ROMs: a ROM BAR switched off, or an empty ROM file, is what
    // rvirt's functions already are.
    if o.get_bool("rombar")? == Some(true) {
        return Err(o.error("rombar=on: option ROMs are not emulated".into()));
    }
    if o.get("romfile").is_some_and(|f| !f.is_empty()) {
        return Err(o.error("romfile: option ROMs are not emulated".into()));
    }
    Ok(())
}

/// `-global DRIVER.PROPERTY=VALUE`: those libvirt passes for pc and q35,
/// accepted where they describe what rvirt's machine already is.
fn global(v: &str) -> Result<(), ConfigError> {
    let refuse = |why: &str| Err(ConfigError::new("-global", format!("'{v}': {why}")));
    let Some((target, value)) = v.split_once('=') else {
        return refuse("expected DRIVER.PROPERTY=VALUE");
    };
    let on = matches!(value, "1" | "on" | "true" | "yes");
    let off = matches!(value, "0" | "off" | "false" | "no");
    match target {
        "kvm-pit.lost_tick_policy" if value == "delay" => Ok(()),
        "PIIX4_PM.disable_s3" | "ICH9-LPC.disable_s3" if on => Ok(()),
        "PIIX4_PM.disable_s4" | "ICH9-LPC.disable_s4" if on => Ok(()),
        "PIIX4_PM.disable_s3" | "ICH9-LPC.disable_s3" if off => {
            refuse("S3 (suspend to RAM) is not supported")
        }
        "PIIX4_PM.disable_s4" | "ICH9-LPC.disable_s4" if off => {
            refuse("S4 (suspend to disk) is not supported")
        }
        "PIIX4_PM.acpi-pci-hotplug-with-bridge-support"
        | "ICH9-LPC.acpi-pci-hotplug-with-bridge-support"
        | "PIIX4_PM.acpi-root-pci-hotplug"
            if off =>
        {
            Ok(())
        }
        _ => refuse("not supported"),
    }
}

fn parse_cpu(v: &str) -> Result<CpuConfig, ConfigError> {
    let mut parts = v.split(',');
    let model = parts.next().unwrap_or_default().to_string();
    if !crate::caps::is_known_cpu_model(&model) {
        let known: Vec<&str> = crate::caps::CPU_MODELS.iter().map(|m| m.name).collect();
        return Err(ConfigError::new(
            "-cpu",
            format!(
                "unable to find CPU model '{model}' (rvirt knows host, max, {})",
                known.join(", ")
            ),
        ));
    }
    let mut flags = Vec::new();
    let mut migratable = true;
    for p in parts.filter(|p| !p.is_empty()) {
        let flag = if let Some(f) = p.strip_prefix('+') {
            (f.to_string(), true)
        } else if let Some(f) = p.strip_prefix('-') {
            (f.to_string(), false)
        } else if let Some((f, val)) = p.split_once('=') {
            let on = match val {
                "on" | "true" | "yes" => true,
                "off" | "false" | "no" => false,
                _ => {
                    return Err(ConfigError::new(
                        "-cpu",
                        format!("invalid value '{val}' for '{f}'"),
                    ))
                }
            };
            (f.to_string(), on)
        } else {
            (p.to_string(), true)
        };
        if flag.0.is_empty() {
            return Err(ConfigError::new("-cpu", format!("invalid feature '{p}'")));
        }
        // A property of the CPU object, not a CPUID feature: QEMU's
        // `migratable` (libvirt's host-passthrough sets it either way).
        if flag.0 == "migratable" {
            migratable = flag.1;
            continue;
        }
        flags.push(flag);
    }
    Ok(CpuConfig {
        model,
        flags,
        migratable,
    })
}

#[cfg(test)]
mod tests;
