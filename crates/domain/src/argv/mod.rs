//! Derives the rvirt-vmm command line (QEMU's syntax, libvirt's choices and
//! device ids) from a definition.
//!
//! `on_reboot='destroy'` becomes `-no-reboot` on the command line (libvirt
//! sets the same through QMP after start; rvirt does it up front).

mod blockdev;
mod boot;
mod devices;
mod graphics;
mod hotplug;
mod isa;
pub use isa::parallel_chardevs;
mod pci;
mod scsi;
mod usb;

pub use devices::{backing_key, backing_paths};
pub use graphics::{vnc_listen, vnc_port, VncListen, VNC_PORT_MIN};
pub use hotplug::{derive_disk, derive_nic};
pub mod support;

use std::fmt;
// `write!` into a String cannot fail, so its result is ignored below.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{Domain, LifecycleAction};

/// Per-domain files the VMM uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    pub monitor_socket: PathBuf,
    pub pidfile: PathBuf,
    pub log_file: PathBuf,
    /// Where the passt of each `<backend type='passt'/>` interface has its
    /// socket and pid file (`NAME-ALIAS.socket`, `NAME-ALIAS.pid`, as
    /// libvirt's passt state directory).
    pub passt_dir: PathBuf,
}

impl RuntimePaths {
    /// `monitor.sock`, `vmm.pid`, `vmm.log` and `passt/` inside `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        RuntimePaths {
            monitor_socket: dir.join("monitor.sock"),
            pidfile: dir.join("vmm.pid"),
            log_file: dir.join("vmm.log"),
            passt_dir: dir.join("passt"),
        }
    }
}

/// Descriptors the daemon opened for the VMM, by what they stand for, as
/// libvirt passes them to QEMU. Derivation with a plan names the
/// descriptor (`fd=N`) where it would otherwise name a path or a device
/// for the VMM to open; an empty plan (`xml-to-native`, `rvirt-xml`)
/// derives the self-contained command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdPlan {
    /// A listening socket for the QMP monitor:
    /// `-chardev socket,id=charmonitor,fd=N,server=on,wait=off`.
    pub monitor: Option<i32>,
    /// Open taps by `-netdev` id (`hostnet0`…): `-netdev tap,id=…,fd=N`
    /// instead of `ifname=`.
    pub taps: BTreeMap<String, i32>,
    /// Open files, as libvirt passes them: `-add-fd set=K,fd=N` and
    /// `/dev/fdset/K` where the path would be. Disks by target (`vda`),
    /// chardev files by chardev id (`charserial0`).
    pub files: BTreeMap<String, i32>,
    /// The daemon confines the VMM: `-sandbox on,…` as libvirt asks for
    /// it (qemu.conf's `seccomp_sandbox`).
    pub sandbox: bool,
    /// Connected sockets to the passt the daemon started for each
    /// user-mode NIC, by `-netdev` id: `-netdev {"type":"stream",
    /// "addr":{"type":"fd","str":"N"},…}` instead of libvirt's socket path
    /// or `-netdev user` (a confined VMM can neither reach a path outside
    /// its jail nor run passt itself).
    pub streams: BTreeMap<String, i32>,
    /// The daemon takes the VMM's stderr as its log and writes its pid
    /// file, as libvirt does: no `-D`, no `-pidfile` (neither path is in
    /// reach of a confined VMM).
    pub daemon_logs: bool,
    /// Files already in a VMM's fd set (hot-plug: passed with QMP
    /// `add-fd`), by what they stand for as in `files`: `/dev/fdset/K`
    /// with no `-add-fd`.
    pub fdsets: BTreeMap<String, u32>,
}

/// libvirt's `-sandbox` when qemu.conf's `seccomp_sandbox` is on.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// A host tap the daemon must create (and attach) before starting the VMM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRequest {
    /// The `-netdev` id: `hostnet0`…
    pub netdev_id: String,
    /// Requested tap name (`<target dev>`), if any.
    pub ifname: Option<String>,
    /// `bridge` or `network` name to attach to, with which kind it is.
    pub attach: Option<(String, String)>,
}

/// A passt the daemon may start before the VMM, one per `<interface
/// type='user'>`. With `<backend type='passt'/>` it must (libvirt's way:
/// `passt --one-off --socket …`, the VMM's `-netdev stream` connecting to
/// it); without one libvirt's argv is `-netdev user`, which rvirt-vmm
/// serves with a passt of its own, unless the daemon starts this passt
/// with slirp's addressing and passes the socket (`FdPlan::streams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasstRequest {
    /// The `-netdev` id: `hostnet0`…
    pub netdev_id: String,
    /// The interface's alias (`net0`…), which names its socket.
    pub alias: String,
    /// Where passt listens and the VMM connects.
    pub socket: PathBuf,
    /// Where passt writes its pid once it serves.
    pub pidfile: PathBuf,
    /// What passt gives the guest.
    pub user: crate::usernet::UserNet,
    /// For an interface without a back-end: the `-netdev user` libvirt
    /// derives, as rvirt-vmm reads it (slirp's addressing, which passt is
    /// told instead of `user`'s options).
    pub slirp: Option<rvirt_vmm_config::UserNetdev>,
}

/// The derived command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Argv {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Devices left off because only a display user needs them.
    pub warnings: Vec<String>,
    pub taps: Vec<TapRequest>,
    pub passt: Vec<PasstRequest>,
}

/// One device rvirt-vmm cannot provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub line: u32,
    /// e.g. `disk 'hda'`, `hostdev`.
    pub device: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.device, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    #[error("Domain type '{0}' is not supported: rvirt-vmm runs guests on KVM only")]
    NotKvm(String),
    #[error("The guest needs devices rvirt-vmm does not emulate: {}", list(.0))]
    Unsupported(Vec<Unsupported>),
}

fn list(items: &[Unsupported]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Escapes a value for QEMU's `key=value,…` syntax (a comma is doubled).
pub(crate) fn qv(s: &str) -> String {
    s.replace(',', ",,")
}

pub(crate) struct Builder<'a> {
    pub argv: Argv,
    pub refused: Vec<Unsupported>,
    pub fds: &'a FdPlan,
    /// The next fd set number.
    pub next_fdset: u32,
    pub paths: &'a RuntimePaths,
    /// The domain's name.
    pub name: &'a str,
}

impl Builder<'_> {
    pub fn opt(&mut self, flag: &str, value: impl Into<String>) {
        self.argv.args.push(flag.to_string());
        self.argv.args.push(value.into());
    }

    pub fn flag(&mut self, flag: &str) {
        self.argv.args.push(flag.to_string());
    }

    /// The path the VMM is to open for `what` (a disk's target, a
    /// chardev's id): `/dev/fdset/K` after an `-add-fd` when the daemon
    /// passes it open, else `path` itself.
    pub fn file(&mut self, what: &str, path: &str) -> String {
        if let Some(set) = self.fds.fdsets.get(what) {
            return format!("/dev/fdset/{set}");
        }
        match self.fds.files.get(what) {
            Some(fd) => {
                let set = self.next_fdset;
                self.next_fdset += 1;
                self.opt("-add-fd", format!("set={set},fd={fd}"));
                format!("/dev/fdset/{set}")
            }
            None => path.to_string(),
        }
    }

    pub fn refuse(&mut self, line: u32, device: impl Into<String>, reason: impl Into<String>) {
        self.refused.push(Unsupported {
            line,
            device: device.into(),
            reason: reason.into(),
        });
    }

    /// Records a left-off device once (USB companion controllers would
    /// otherwise repeat the same line).
    pub fn warn(&mut self, msg: String) {
        if !self.argv.warnings.contains(&msg) {
            tracing::debug!(%msg, "device left off the command line");
            self.argv.warnings.push(msg);
        }
    }
}

/// Derives the rvirt-vmm argument vector for `dom`, the VMM opening its
/// monitor socket and taps itself.
pub fn derive_argv(dom: &Domain, paths: &RuntimePaths) -> Result<Argv, DeriveError> {
    derive_argv_with(dom, paths, &FdPlan::default())
}

/// Derives the rvirt-vmm argument vector for `dom` with the descriptors
/// of `fds` in place of what they stand for.
pub fn derive_argv_with(
    dom: &Domain,
    paths: &RuntimePaths,
    fds: &FdPlan,
) -> Result<Argv, DeriveError> {
    if dom.kind != "kvm" {
        return Err(DeriveError::NotKvm(dom.kind.clone()));
    }
    let mut b = Builder {
        argv: Argv::default(),
        refused: Vec::new(),
        fds,
        next_fdset: 0,
        paths,
        name: &dom.name,
    };
    b.opt("-name", format!("guest={},debug-threads=on", qv(&dom.name)));
    b.flag("-S");
    let m = machine(dom, &mut b);
    b.opt("-machine", m);
    b.opt("-accel", "kvm");
    if let Some(cpu) = cpu(dom, &mut b) {
        b.opt("-cpu", cpu);
    }
    if let Some(bios) = boot::firmware(dom, &mut b) {
        b.opt("-bios", bios);
    }
    let m = memory(dom, &mut b);
    b.opt("-m", m);
    let smp = smp(dom, &mut b);
    b.opt("-smp", smp);
    if let Some(u) = dom.uuid {
        b.opt("-uuid", u.hyphenated().to_string());
    }
    b.flag("-no-user-config");
    b.flag("-nodefaults");
    let monitor = match fds.monitor {
        Some(fd) => format!("fd={fd}"),
        None => format!("path={}", qv(&paths.monitor_socket.to_string_lossy())),
    };
    b.opt(
        "-chardev",
        format!("socket,id=charmonitor,{monitor},server=on,wait=off"),
    );
    b.opt("-mon", "chardev=charmonitor,id=monitor,mode=control");
    clock(dom, &mut b);
    b.flag("-no-shutdown");
    if dom.on_reboot == Some(LifecycleAction::Destroy) {
        b.flag("-no-reboot");
    }
    if !dom.has_feature("acpi") {
        b.flag("-no-acpi");
    }
    let boot = boot::boot_option(dom);
    b.opt("-boot", boot);
    if let Some(k) = &dom.os.kernel {
        b.opt("-kernel", k.clone());
    }
    if let Some(i) = &dom.os.initrd {
        b.opt("-initrd", i.clone());
    }
    if let Some(c) = &dom.os.cmdline {
        b.opt("-append", c.clone());
    }
    unapplied(dom, &mut b);
    devices::all(dom, &mut b);
    if fds.sandbox {
        b.opt("-sandbox", SANDBOX);
    }
    if !fds.daemon_logs {
        b.opt("-pidfile", paths.pidfile.to_string_lossy().into_owned());
        b.opt("-D", paths.log_file.to_string_lossy().into_owned());
    }
    if b.refused.is_empty() {
        Ok(b.argv)
    } else {
        Err(DeriveError::Unsupported(b.refused))
    }
}

/// Parts of a definition the command line does not carry: refused when the
/// guest depends on them, otherwise named in a warning.
fn unapplied(dom: &Domain, b: &mut Builder) {
    let numa = dom
        .cpu
        .as_ref()
        .is_some_and(|c| c.extra.child("numa").is_some());
    if numa && !support::NUMA {
        b.warn("cpu/numa left off: the guest sees one NUMA node".to_string());
    }
    let host_tuning = [
        ("cputune", dom.cputune.is_some()),
        ("vcpu cpuset", dom.vcpu.cpuset.is_some()),
        ("memoryBacking", dom.memory_backing.is_some()),
        ("numatune", dom.extra.child("numatune").is_some()),
        ("memtune", dom.extra.child("memtune").is_some()),
        ("blkiotune", dom.extra.child("blkiotune").is_some()),
    ];
    for (what, present) in host_tuning {
        if present {
            b.warn(format!(
                "{what} not applied: host-side tuning is not implemented"
            ));
        }
    }
}

fn machine(dom: &Domain, b: &mut Builder) -> String {
    let name = dom.os.machine.as_deref().unwrap_or("pc");
    if !support::machine(name) {
        b.refuse(
            dom.os.line.0,
            "os/type",
            format!("machine type '{name}' is not supported"),
        );
    }
    let mut m = qv(name);
    m.push_str(",usb=off");
    let vmport_off = dom
        .features
        .as_ref()
        .and_then(|f| f.child("vmport"))
        .is_some_and(|v| v.attr("state") == Some("off"));
    if vmport_off {
        m.push_str(",vmport=off");
    }
    m.push_str(",dump-guest-core=off");
    m
}

/// libvirt's CPU model for x86 guests that name none.
const DEFAULT_CPU_MODEL: &str = "qemu64";

fn cpu(dom: &Domain, b: &mut Builder) -> Option<String> {
    let x86 = matches!(dom.os.arch.as_deref(), None | Some("x86_64"));
    let Some(cpu) = dom.cpu.as_ref() else {
        return x86.then(|| DEFAULT_CPU_MODEL.to_string());
    };
    let mut s = match cpu.mode.as_deref() {
        Some("host-passthrough") => {
            let migratable = cpu.extra.attr("migratable").unwrap_or("on");
            format!("host,migratable={migratable}")
        }
        // Expanding host-model needs the host's CPU; the VMM resolves `host`.
        Some("host-model") => "host".to_string(),
        Some("maximum") => "max".to_string(),
        _ => match &cpu.model {
            Some(m) => {
                if !support::cpu_model(&m.name) {
                    b.refuse(
                        cpu.line.0,
                        "cpu",
                        format!(
                            "model '{}' is not supported (only host-model, host-passthrough, maximum and {})",
                            m.name,
                            rvirt_vmm_config::caps::CPU_MODELS
                                .iter()
                                .map(|m| m.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                qv(&m.name)
            }
            None if x86 => DEFAULT_CPU_MODEL.to_string(),
            None => return None,
        },
    };
    for f in &cpu.features {
        let on = match f.policy.as_deref() {
            Some("disable" | "forbid") => "off",
            // `optional` depends on what the host offers: left to the model.
            Some("optional") => continue,
            _ => "on",
        };
        let _ = write!(s, ",{}={on}", qv(&f.name));
    }
    Some(s)
}

fn memory(dom: &Domain, b: &mut Builder) -> String {
    let mut s = format!("size={}k", dom.memory_kib);
    if let Some(max) = &dom.max_memory {
        if let Some(slots) = max.slots {
            if !support::MEMORY_HOTPLUG {
                b.refuse(
                    dom.lines.max_memory.0,
                    "maxMemory",
                    "memory hotplug (slots) is not supported",
                );
            }
            let _ = write!(s, ",slots={slots},maxmem={}k", max.kib);
        }
    }
    s
}

fn smp(dom: &Domain, b: &mut Builder) -> String {
    let max = dom.vcpu.count;
    let mut s = dom.boot_vcpus().to_string();
    if dom.boot_vcpus() != max {
        let _ = write!(s, ",maxcpus={max}");
    }
    match dom.cpu.as_ref().and_then(|c| c.topology.as_ref()) {
        Some(t) => {
            let _ = write!(s, ",sockets={}", t.sockets);
            // libvirt names dies whenever a topology is given.
            let _ = write!(s, ",dies={}", t.dies.unwrap_or(1));
            if let Some(c) = t.clusters.filter(|&c| c > 1) {
                if !support::CLUSTERS {
                    b.refuse(
                        t.line.0,
                        "cpu/topology",
                        format!("clusters='{c}': x86 CPUs have no clusters"),
                    );
                }
                let _ = write!(s, ",clusters={c}");
            }
            let _ = write!(s, ",cores={},threads={}", t.cores, t.threads);
        }
        None => s.push_str(&format!(",sockets={max},cores=1,threads=1")),
    }
    s
}

fn clock(dom: &Domain, b: &mut Builder) {
    let Some(clock) = &dom.clock else {
        b.opt("-rtc", "base=utc");
        return;
    };
    let offset = clock.offset.as_deref().unwrap_or("utc");
    if !support::clock_offset(offset) {
        b.refuse(
            clock.extra.line.0,
            "clock",
            format!("offset '{offset}' is not supported: the RTC runs on UTC"),
        );
    }
    let base = match clock.offset.as_deref() {
        Some("localtime") => "localtime",
        _ => "utc",
    };
    let timer = |name: &str| {
        clock
            .extra
            .elements()
            .find(|t| t.attr("name") == Some(name))
    };
    let mut rtc = format!("base={base}");
    if timer("rtc").is_some_and(|t| t.attr("tickpolicy") == Some("catchup")) {
        rtc.push_str(",driftfix=slew");
    }
    b.opt("-rtc", rtc);
    if timer("hpet").is_some_and(|t| t.attr("present") == Some("no")) {
        b.flag("-no-hpet");
    }
}
