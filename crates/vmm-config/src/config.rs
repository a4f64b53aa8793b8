//! The configuration structs the command line parses into.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::chardev::{ChardevBackend, ChardevConfig};
pub use crate::disk::DiskConfig;
use crate::sandbox::{AddFd, RunAs, SandboxConfig};
use crate::smp::Smp;

/// `-cpu`: a model and its feature flags, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuConfig {
    /// `host`, `max` or a model of `caps::CPU_MODELS`.
    pub model: String,
    /// (feature, on) in the order given.
    pub flags: Vec<(String, bool)>,
    /// `migratable=` (on by default, as QEMU's): whether `host`/`max`
    /// leave out what a migration could not keep.
    pub migratable: bool,
}

impl Default for CpuConfig {
    fn default() -> Self {
        // QEMU's default model on x86_64 is qemu64; with KVM, `host` is what
        // libvirt's host-passthrough asks for. We default to qemu64 as QEMU.
        CpuConfig {
            model: "qemu64".into(),
            flags: Vec::new(),
            migratable: true,
        }
    }
}

/// A monitor: QMP (`mode=control`) or the human monitor (`readline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// The monitor's id (`monitor` in libvirt's `-mon`).
    pub id: String,
    /// The chardev it runs on (`charmonitor`; `compat_monitorN` for `-qmp`).
    pub chardev: String,
    pub backend: ChardevBackend,
    pub control: bool,
    pub pretty: bool,
}

/// A serial port and where its bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConfig {
    /// The chardev id (`charserial0`, or generated for `-serial` shorthand).
    pub chardev: String,
    /// The device id (`serial0`).
    pub id: String,
    pub backend: ChardevBackend,
    /// The port the guest finds it on: 0 is COM1 (0x3f8, IRQ 4) … 3 is
    /// COM4 (`isa-serial,index=N`; `-serial` ports in order).
    pub index: u32,
}

/// Where a virtio-net device's tap comes from (`-netdev tap,...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapSource {
    /// `ifname=NAME`: open (or create) the tap of that name; `None` lets
    /// the kernel pick one (`tap%d`), as QEMU does without `ifname`.
    Name(Option<String>),
    /// `fd=N`: an open tap the parent passed (libvirt's form).
    Fd(i32),
}

/// What carries a virtio-net device's frames: the `-netdev` it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netdev {
    /// `-netdev tap`.
    Tap(TapSource),
    /// `-netdev stream` (`server=off`): frames over a UNIX stream socket,
    /// each after its length (passt's `--socket`).
    Stream(StreamNetdev),
    /// `-netdev user`: user-mode networking, which rvirt-vmm serves by
    /// running passt with slirp's addressing.
    User(UserNetdev),
}

/// `-netdev stream,addr.type=…` as a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNetdev {
    pub addr: StreamAddr,
    /// `reconnect=N`: with the peer gone (or not there at start), try
    /// again every N seconds instead of staying down.
    pub reconnect: Option<u32>,
}

/// Where a stream netdev connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamAddr {
    /// `addr.type=unix,addr.path=PATH`.
    Unix(PathBuf),
    /// `addr.type=fd,addr.str=N`: a connected socket the parent passed.
    Fd(i32),
}

/// `-netdev user`: slirp's network, served by passt. The addresses are
/// slirp's defaults unless given (`net=`, `host=`, `dhcpstart=`, `dns=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNetdev {
    /// The guest's DHCP address (`dhcpstart=`, the 15th of `net=`).
    pub guest: Ipv4Addr,
    /// The prefix length of `net=`.
    pub prefix: u8,
    /// The gateway (`host=`, the 2nd of `net=`), which reaches the host
    /// itself.
    pub host: Ipv4Addr,
    /// The DNS server (`dns=`, the 3rd of `net=`), forwarded to the host's
    /// resolver.
    pub dns: Ipv4Addr,
    pub hostfwd: Vec<HostFwd>,
    /// `ipv4=`, `ipv6=`.
    pub ipv4: bool,
    pub ipv6: bool,
}

/// `hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFwd {
    pub udp: bool,
    pub host_addr: Option<Ipv4Addr>,
    pub host_port: u16,
    pub guest_port: u16,
}

/// A virtio-net NIC: `-netdev TYPE,id=ID,...` and the
/// `-device virtio-net-device,netdev=ID,...` that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The `-netdev` id.
    pub netdev: String,
    /// The guest device's id (`-device ...,id=`), if given.
    pub id: Option<String>,
    /// `mac=`; QEMU's default is 52:54:00:12:34:56 plus the NIC's index.
    pub mac: [u8; 6],
    pub backend: Netdev,
    /// `bootindex=`: where firmware tries this NIC in the boot order.
    pub bootindex: Option<u32>,
}

/// The model of an emulated NIC that is not virtio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicModel {
    /// `-device e1000`: Intel's 82540EM.
    E1000,
    /// `-device e1000e`: Intel's 82574L (PCI Express, MSI-X).
    E1000e,
}

impl NicModel {
    /// QEMU's driver name.
    pub fn driver(self) -> &'static str {
        match self {
            NicModel::E1000 => "e1000",
            NicModel::E1000e => "e1000e",
        }
    }
}

/// An emulated NIC that is not virtio (`-device e1000|e1000e,netdev=ID,...`):
/// its netdev, MAC, id and boot index as virtio-net's, always a PCI
/// function (an e1000 on the root bus; an e1000e also behind a root
/// port, as libvirt places it on q35).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciNicConfig {
    pub model: NicModel,
    pub net: NetConfig,
    pub addr: PciAddr,
}

/// A virtio console: `-device virtio-serial-device` with one
/// `-device virtconsole,chardev=ID` on it (port 0; no MULTIPORT yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The virtio-serial-device's id, if given.
    pub id: Option<String>,
    /// The port: its chardev id, device id and backend. `None` for a
    /// virtio-serial-device with no virtconsole (output is dropped).
    pub port: Option<ConsolePort>,
}

/// The virtconsole port of a [`ConsoleConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsolePort {
    pub chardev: String,
    pub id: Option<String>,
    pub backend: ChardevBackend,
}

/// `-device virtio-balloon-device[,id=,deflate-on-oom=on]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalloonConfig {
    pub id: Option<String>,
    pub deflate_on_oom: bool,
}

/// Which virtio-input device (`-device virtio-{keyboard,mouse,tablet}-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputModel {
    Keyboard,
    Mouse,
    Tablet,
}

/// `-device virtio-keyboard-device|virtio-mouse-device|virtio-tablet-device[,id=]`
/// (and their `-pci` forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    pub id: Option<String>,
    pub model: InputModel,
}

/// A virtio device, in command-line order; where each sits is in
/// [`VmConfig::virtio_addrs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtioConfig {
    /// virtio-rng reading from `filename` (`-object rng-random`).
    Rng {
        id: Option<String>,
        filename: PathBuf,
    },
    Blk(DiskConfig),
    Net(NetConfig),
    Console(ConsoleConfig),
    Balloon(BalloonConfig),
    Input(InputConfig),
    /// `virtio-scsi-device|pci` with its `scsi-hd`/`scsi-cd` LUNs.
    Scsi(ScsiConfig),
}

/// `-boot`: what firmware is told about booting (QEMU's meanings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// `order=`: drive letters (`c` disk, `d` CD-ROM, `n` network, `a`
    /// floppy), as given.
    pub order: Option<String>,
    /// `menu=on`: firmware offers its boot menu.
    pub menu: bool,
    /// `splash-time=`: how long the menu prompt waits, in ms.
    pub splash_time: Option<u32>,
    /// `strict=on`: boot only from devices with a boot index.
    pub strict: bool,
    /// `reboot-timeout=`: ms before firmware reboots when nothing boots
    /// (-1, the default, never).
    pub reboot_timeout: Option<i64>,
}

/// Where a `-fw_cfg` item's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgSource {
    File(PathBuf),
    String(String),
}

/// `-fw_cfg name=opt/…,file=…|string=…`: a file firmware or the guest
/// reads through fw_cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgItem {
    pub name: String,
    pub source: FwCfgSource,
}

/// `-debugcon`: QEMU's ISA debug console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugconConfig {
    /// The port (`-global isa-debugcon.iobase=`; QEMU's default is 0xe9,
    /// SeaBIOS writes to 0x402).
    pub port: u16,
    pub backend: ChardevBackend,
}

/// The chipset a machine type selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chipset {
    /// `pc`, `pc-i440fx-*`: i440FX host bridge, PIIX3/PIIX4, a PCI bus.
    I440fx,
    /// `q35`, `pc-q35-*`: Q35 host bridge, ICH9, a PCI Express root complex
    /// with ECAM.
    Q35,
    /// `microvm`: no PCI; virtio devices on virtio-mmio.
    Microvm,
}

impl Chipset {
    /// The chipset of a machine type, if rvirt has it.
    pub fn of(machine: &str) -> Option<Self> {
        match machine {
            "q35" => Some(Chipset::Q35),
            t if t.starts_with("pc-q35-") => Some(Chipset::Q35),
            "microvm" => Some(Chipset::Microvm),
            // `none` is QEMU's empty board; rvirt builds its default one.
            "pc" | "none" => Some(Chipset::I440fx),
            t if t.starts_with("pc-") => Some(Chipset::I440fx),
            _ => None,
        }
    }

    /// The id of the root bus, as `bus=` names it.
    pub fn root_bus(self) -> Option<&'static str> {
        match self {
            Chipset::I440fx => Some("pci.0"),
            Chipset::Q35 => Some("pcie.0"),
            Chipset::Microvm => None,
        }
    }
}

/// A PCI bus a function sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciBus {
    /// The root bus (`pci.0` on pc, `pcie.0` on q35).
    Root,
    /// The secondary bus of [`VmConfig::root_ports`]`[i]` (a root port
    /// or a PCI bridge).
    Port(usize),
}

/// A PCI function's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddr {
    pub bus: PciBus,
    pub slot: u8,
    pub function: u8,
    /// `multifunction=on`: header type bit 7, other functions may share
    /// the slot.
    pub multifunction: bool,
}

/// Where a device sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAddr {
    /// A virtio-mmio slot (`-device virtio-*-device`), placed in order.
    Mmio,
    /// A PCI function (`-device virtio-*-pci`).
    Pci { addr: PciAddr },
}

/// A display device's model, by QEMU's device name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayModel {
    /// `-device bochs-display`: the Bochs VBE registers and VRAM, no VGA.
    Bochs,
    /// `-device VGA` (and `-vga std`): QEMU's std VGA, the legacy VGA and
    /// its BIOS as well.
    Vga,
}

/// `-device bochs-display,vgamem=,edid=,id=,bus=,addr=` or
/// `-device VGA,vgamem_mb=,romfile=,edid=,id=,bus=,addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayConfig {
    pub model: DisplayModel,
    pub id: Option<String>,
    /// Video memory in bytes: 4 to 256 MiB, a power of two (QEMU rounds
    /// up).
    pub vgamem: u64,
    pub addr: PciAddr,
    /// The expansion ROM (the std VGA's BIOS); `None`: no ROM BAR.
    pub romfile: Option<PathBuf>,
}

/// Which bridge a [`RootPortConfig`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortModel {
    /// `pcie-root-port`: one slot behind it (slot 0).
    #[default]
    RootPort,
    /// `pci-bridge,chassis_nr=`: 32 slots behind it; `chassis` is its
    /// `chassis_nr`.
    PciBridge,
    /// `pcie-pci-bridge` (libvirt's `pcie-to-pci-bridge`): 32 slots.
    PcieToPciBridge,
}

impl PortModel {
    /// QEMU's driver name.
    pub fn driver(self) -> &'static str {
        match self {
            PortModel::RootPort => "pcie-root-port",
            PortModel::PciBridge => "pci-bridge",
            PortModel::PcieToPciBridge => "pcie-pci-bridge",
        }
    }
}

/// A bridge: `-device pcie-root-port,port=,chassis=,id=,bus=,addr=`,
/// `-device pci-bridge,chassis_nr=,id=,bus=,addr=` or `-device
/// pcie-pci-bridge,id=,bus=,addr=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPortConfig {
    pub model: PortModel,
    /// The id, which devices behind it name as their `bus=`.
    pub id: String,
    /// The port number (Link Capabilities).
    pub port: u8,
    pub chassis: u8,
    /// The physical slot number (Slot Capabilities).
    pub slot: u16,
    pub addr: PciAddr,
    /// `hotplug=` (on by default, as QEMU's): whether its slot takes
    /// devices while the guest runs.
    pub hotplug: bool,
}

/// An AHCI controller: q35's built-in one at 00:1f.2 (its ports are the
/// buses `ide.0`-`ide.5`, as QEMU names them) or `-device ich9-ahci|ahci`
/// (buses `ID.0`-`ID.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AhciConfig {
    pub id: Option<String>,
    pub builtin: bool,
    pub addr: PciAddr,
}

/// A virtio-scsi controller and the LUNs on its bus (`bus=ID.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiConfig {
    pub id: Option<String>,
    /// Request queues (`num_queues=`): by default one per vCPU on PCI,
    /// one on virtio-mmio, as QEMU 7.2 (`crate::parse`'s scsi module).
    pub num_queues: u32,
    /// In command-line order.
    pub luns: Vec<ScsiLunConfig>,
}

/// `-device scsi-hd|scsi-cd,bus=,channel=0,scsi-id=,lun=,drive=,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiLunConfig {
    /// Disk or CD-ROM (the ATA kinds mean the same here).
    pub kind: AtaKind,
    /// `scsi-id=`.
    pub target: u8,
    pub lun: u16,
    pub id: Option<String>,
    /// The medium; `None` for a CD-ROM with none.
    pub disk: Option<DiskConfig>,
    /// `bootindex=` (also in `disk`, which an empty CD-ROM lacks).
    pub bootindex: Option<u32>,
    /// `device_id=` (libvirt's `drive-scsi0-0-0-0`): what VPD page 0x83
    /// names the LUN by when it has no serial.
    pub device_id: Option<String>,
}

/// What an ATA drive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtaKind {
    /// `-device ide-hd`.
    Disk,
    /// `-device ide-cd`: read-only, removable, possibly empty.
    Cdrom,
}

/// `-device ide-hd|ide-cd,bus=,drive=,…` on an AHCI port or on pc's PIIX3
/// IDE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtaDriveConfig {
    pub kind: AtaKind,
    /// On pc's built-in PIIX3 IDE (00:01.1, buses `ide.0` and `ide.1`)
    /// rather than an AHCI controller.
    pub ide: bool,
    /// Index in [`VmConfig::ahci`] (0 on the PIIX3 IDE).
    pub controller: usize,
    /// The AHCI port, or on the PIIX3 IDE channel * 2 + unit (QEMU's
    /// drive number, as its serials count).
    pub port: u8,
    pub id: Option<String>,
    /// The medium; `None` for a CD-ROM with none.
    pub disk: Option<DiskConfig>,
    /// `bootindex=` (also in `disk`, which an empty CD-ROM lacks).
    pub bootindex: Option<u32>,
}

impl VirtioConfig {
    /// The device's id (`-device …,id=`), if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            VirtioConfig::Rng { id, .. } => id.as_deref(),
            VirtioConfig::Blk(d) => d.id.as_deref(),
            VirtioConfig::Net(n) => n.id.as_deref(),
            VirtioConfig::Console(c) => c.id.as_deref(),
            VirtioConfig::Balloon(b) => b.id.as_deref(),
            VirtioConfig::Input(i) => i.id.as_deref(),
            VirtioConfig::Scsi(s) => s.id.as_deref(),
        }
    }
}

/// Everything rvirt-vmm needs to build and run one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    pub smp: Smp,
    pub cpu: CpuConfig,
    /// The `-machine` type as given.
    pub machine: String,
    /// The chipset that type selects.
    pub chipset: Chipset,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// The firmware image: `-bios`, or the machine's default SeaBIOS when
    /// no `-kernel` is given. `None` with `-kernel` (direct boot).
    pub bios: Option<PathBuf>,
    /// `-boot`.
    pub boot: BootOptions,
    /// `-fw_cfg` items, in order.
    pub fw_cfg: Vec<FwCfgItem>,
    /// `-debugcon`.
    pub debugcon: Option<DebugconConfig>,
    /// Whether firmware uses the display: a std VGA with its BIOS and
    /// neither `-nographic` nor `-machine graphics=off`. Otherwise
    /// firmware mirrors its console to the first serial port, as QEMU's
    /// does under those options (and rvirt's with no display it could
    /// use).
    pub graphics: bool,
    /// `-vnc`: the VNC server of the graphical console.
    pub vnc: Option<crate::vnc::VncConfig>,
    /// The display device the console shows (`-device bochs-display`);
    /// without one the console is blank.
    pub display: Option<DisplayConfig>,
    /// Serial ports, each on the COM port its `index` names.
    pub serials: Vec<SerialConfig>,
    /// Every `-chardev`, by id, including those used by serials and monitors.
    pub chardevs: Vec<ChardevConfig>,
    pub monitors: Vec<MonitorConfig>,
    /// QEMU's pvpanic ISA device (`-device pvpanic`).
    pub pvpanic: bool,
    /// The virtio devices, in command-line order.
    pub virtio: Vec<VirtioConfig>,
    /// Where each of [`VmConfig::virtio`] sits, in the same order:
    /// virtio-mmio slots are handed out in this order, PCI functions sit
    /// where `bus=`/`addr=` (or QEMU's first free slot) put them.
    pub virtio_addrs: Vec<DeviceAddr>,
    /// The emulated NICs that are not virtio (`-device e1000`), in
    /// command-line order.
    pub nics: Vec<PciNicConfig>,
    /// The bridges (`-device pcie-root-port`, `pci-bridge`,
    /// `pcie-pci-bridge`), in command-line order.
    pub root_ports: Vec<RootPortConfig>,
    /// AHCI controllers, the built-in one first (q35).
    pub ahci: Vec<AhciConfig>,
    /// ATA drives on them, in command-line order.
    pub ata_drives: Vec<AtaDriveConfig>,
    /// ACPI tables (off with `-no-acpi` or `-machine acpi=off`: the guest
    /// finds its CPUs in the MP table and cannot power itself off).
    pub acpi: bool,
    /// `-S`: create the VM but run no vCPU until the monitor says `cont`.
    pub start_paused: bool,
    /// `-no-reboot`: a guest reset ends the process.
    pub no_reboot: bool,
    /// `-no-shutdown`: a guest power-off stops the VM but keeps the process.
    pub no_shutdown: bool,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    /// `-D`: the log file.
    pub logfile: Option<PathBuf>,
    /// `-sandbox on`: seccomp filters per thread and Landlock.
    pub sandbox: Option<SandboxConfig>,
    /// `-runas`: the user to become once everything is open.
    pub runas: Option<RunAs>,
    /// `-add-fd`: descriptors passed for `/dev/fdset/N` paths.
    pub add_fds: Vec<AddFd>,
    /// `-device i6300esb`.
    pub watchdog: Option<crate::WatchdogConfig>,
    /// `-watchdog-action`, `-action watchdog=`.
    pub watchdog_action: crate::WatchdogAction,
    /// Parallel ports, in index order.
    pub parallels: Vec<crate::ParallelConfig>,
    /// `-device qemu-xhci`, in command-line order.
    pub usb_controllers: Vec<crate::UsbControllerConfig>,
    /// `-device usb-tablet|usb-kbd|usb-mouse`, in command-line order.
    pub usb_devices: Vec<crate::UsbDeviceConfig>,
}

/// Where Debian installs SeaBIOS (QEMU's own copies are links to these).
pub const FIRMWARE_DIRS: &[&str] = &["/usr/share/seabios", "/usr/share/qemu"];

/// The SeaBIOS image a machine type boots by default, as QEMU picks it.
pub fn default_bios(machine: &str) -> &'static str {
    if machine == "microvm" {
        "bios-microvm.bin"
    } else {
        "bios-256k.bin"
    }
}

/// The path of a firmware file: the first of [`FIRMWARE_DIRS`] that has
/// it, or the first directory's (whose absence the load then reports).
pub fn find_firmware(name: &str) -> PathBuf {
    FIRMWARE_DIRS
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| std::path::Path::new(FIRMWARE_DIRS[0]).join(name))
}

/// QEMU's default RAM size: 128 MiB.
pub const DEFAULT_MEM_SIZE: u64 = 128 << 20;

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            name: None,
            uuid: None,
            mem_size: DEFAULT_MEM_SIZE,
            smp: Smp::default(),
            cpu: CpuConfig::default(),
            machine: "pc".into(),
            chipset: Chipset::I440fx,
            kernel: None,
            initrd: None,
            append: None,
            bios: None,
            boot: BootOptions::default(),
            fw_cfg: Vec::new(),
            debugcon: None,
            graphics: false,
            vnc: None,
            display: None,
            serials: Vec::new(),
            chardevs: Vec::new(),
            monitors: Vec::new(),
            pvpanic: false,
            virtio: Vec::new(),
            virtio_addrs: Vec::new(),
            nics: Vec::new(),
            root_ports: Vec::new(),
            ahci: Vec::new(),
            ata_drives: Vec::new(),
            acpi: true,
            start_paused: false,
            no_reboot: false,
            no_shutdown: false,
            daemonize: false,
            pidfile: None,
            logfile: None,
            sandbox: None,
            runas: None,
            add_fds: Vec::new(),
            watchdog: None,
            watchdog_action: crate::WatchdogAction::Reset,
            parallels: Vec::new(),
            usb_controllers: Vec::new(),
            usb_devices: Vec::new(),
        }
    }
}
