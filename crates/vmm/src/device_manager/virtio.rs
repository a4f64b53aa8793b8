//! The virtio device factory: each `-device` of the command line opened
//! into a device model with its host side (a disk, a tap, a stream socket
//! or passt, a chardev, an entropy source; virtio-input has none: the
//! console feeds it). Device models and their host files live as long as the
//! VMM; placing and wiring them is the device manager's job.

use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rvirt_qmp::EventBus;
use rvirt_virtio::balloon::{Balloon, BalloonOptions};
use rvirt_virtio::console::Console;
use rvirt_virtio::input::{Input, InputKind};
use rvirt_virtio::net::{Net, NetBackend, StreamError, StreamNetdev, Tap, TapError};
use rvirt_virtio::rng::Rng;
use rvirt_virtio::VirtioDevice;
use rvirt_vmm_config::{
    ConsoleConfig, InputModel, NetConfig, Netdev, StreamAddr, TapSource, VirtioConfig, VmConfig,
};

use crate::balloon::{BalloonControl, BalloonDevice};
use crate::chardev::{Chardev, ChardevError};
use crate::disk::{DiskError, DiskModel};
use crate::passt::{Passt, PasstError};

/// A device model as the transports and the event loop share it.
pub(crate) type SharedVirtio = Arc<Mutex<dyn VirtioDevice>>;

/// Why a virtio device's host side cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    #[error("could not open '{}'", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Disk(DiskError),
    #[error("netdev '{netdev}'")]
    Tap {
        netdev: String,
        #[source]
        source: TapError,
    },
    #[error("netdev '{netdev}'")]
    Stream {
        netdev: String,
        #[source]
        source: StreamError,
    },
    #[error("netdev '{netdev}'")]
    Passt {
        netdev: String,
        #[source]
        source: PasstError,
    },
    #[error("chardev '{chardev}'")]
    Chardev {
        chardev: String,
        #[source]
        source: ChardevError,
    },
    #[error("too many virtio devices: at most {0}")]
    TooMany(usize),
    #[error("failed to register {what} with KVM")]
    Kvm {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A device that panicked mid-request left its state as it was; serving
    // the other queues beats taking the VMM down.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A NIC as QMP's `set_link` names it: by its netdev id or its device id.
pub(crate) struct NicControl {
    names: Vec<String>,
    nic: Nic,
}

/// The NIC models `set_link` reaches.
pub(crate) enum Nic {
    Virtio(Arc<Mutex<Net>>),
    E1000(super::nic::SharedE1000),
}

impl NicControl {
    /// A NIC known by its netdev id and, if given, its device id.
    pub(crate) fn new(netdev: &str, id: Option<&str>, nic: Nic) -> Self {
        NicControl {
            names: std::iter::once(netdev)
                .chain(id)
                .map(str::to_string)
                .collect(),
            nic,
        }
    }

    pub(crate) fn is_named(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Link status as the guest sees it (virtio-net's config space and a
    /// config interrupt, the e1000's STATUS and LSC). Down also drops what
    /// the guest sends, as QEMU.
    pub(crate) fn set_link(&self, up: bool) {
        match &self.nic {
            Nic::Virtio(net) => lock(net).set_link_up(up),
            Nic::E1000(card) => card
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_link_up(up),
        }
    }
}

/// What the factory built for one `-device`, and what the rest of the VMM
/// keeps of it.
pub(crate) struct Built {
    pub(crate) device: SharedVirtio,
    /// The option to blame when this device's wiring fails.
    pub(crate) option: &'static str,
    pub(crate) chardev: Option<Chardev>,
    pub(crate) nic: Option<NicControl>,
    pub(crate) balloon: Option<BalloonControl>,
    /// A disk, as the monitor reports it.
    pub(crate) disks: Vec<DiskModel>,
    /// The passt serving a `-netdev user`, which lives as long as the VMM.
    pub(crate) passt: Option<Passt>,
    /// A virtio-input device, which the console's input reaches.
    pub(crate) input: Option<Arc<Mutex<Input>>>,
    /// A virtio-scsi controller's LUNs, for the monitor's media commands.
    pub(crate) scsi_luns: Vec<super::scsi::ScsiLun>,
}

impl Built {
    fn plain(device: SharedVirtio, option: &'static str) -> Self {
        Built {
            device,
            option,
            chardev: None,
            nic: None,
            balloon: None,
            disks: Vec::new(),
            passt: None,
            input: None,
            scsi_luns: Vec::new(),
        }
    }
}

/// Opens one device's host side; on error, the option to blame. `n` is the
/// device's place among the virtio devices (a disk's anonymous node names
/// come from it).
pub(crate) fn build(
    n: usize,
    dev: &VirtioConfig,
    cfg: &VmConfig,
    bus: &EventBus,
) -> Result<Built, (&'static str, VirtioError)> {
    Ok(match dev {
        VirtioConfig::Rng { filename, .. } => {
            let rng = Rng::from_path(filename).map_err(|source| {
                (
                    "-object",
                    VirtioError::Open {
                        path: filename.clone(),
                        source,
                    },
                )
            })?;
            Built::plain(Arc::new(Mutex::new(rng)), "-object")
        }
        VirtioConfig::Blk(d) => {
            let (block, model) =
                crate::disk::open(n, d).map_err(|e| ("-drive", VirtioError::Disk(e)))?;
            Built {
                disks: vec![model],
                ..Built::plain(block, "-drive")
            }
        }
        VirtioConfig::Net(n) => {
            let (net, passt) = open_nic(n).map_err(|e| ("-netdev", e))?;
            let net = Arc::new(Mutex::new(net));
            let nic = NicControl::new(&n.netdev, n.id.as_deref(), Nic::Virtio(net.clone()));
            Built {
                nic: Some(nic),
                passt,
                ..Built::plain(net, "-netdev")
            }
        }
        VirtioConfig::Console(c) => {
            let (console, chardev) = open_console(c).map_err(|e| ("-chardev", e))?;
            Built {
                chardev,
                ..Built::plain(console, "-chardev")
            }
        }
        VirtioConfig::Balloon(b) => {
            let device = Arc::new(Mutex::new(BalloonDevice::new(
                Balloon::new(BalloonOptions {
                    stats: true,
                    deflate_on_oom: b.deflate_on_oom,
                }),
                cfg.mem_size,
                bus.clone(),
            )));
            Built {
                balloon: Some(BalloonControl::new(
                    device.clone(),
                    cfg.mem_size,
                    b.id.clone(),
                )),
                ..Built::plain(device, "-device")
            }
        }
        VirtioConfig::Scsi(s) => {
            let opened =
                super::scsi::open(n, s, bus).map_err(|e| ("-drive", VirtioError::Disk(e)))?;
            Built {
                disks: opened.models,
                scsi_luns: opened.luns,
                ..Built::plain(opened.ctrl, "-device")
            }
        }
        VirtioConfig::Input(i) => {
            let device = Arc::new(Mutex::new(Input::new(match i.model {
                InputModel::Keyboard => InputKind::Keyboard,
                InputModel::Mouse => InputKind::Mouse,
                InputModel::Tablet => InputKind::Tablet,
            })));
            Built {
                input: Some(device.clone()),
                ..Built::plain(device, "-device")
            }
        }
    })
}

/// Opens a NIC's back-end and builds the device on it.
fn open_nic(n: &NetConfig) -> Result<(Net, Option<Passt>), VirtioError> {
    let (backend, passt) = open_netdev(n)?;
    Ok((Net::new(backend, n.mac), passt))
}

/// Opens a NIC's back-end: its tap, its stream socket, or passt for
/// `-netdev user` (any NIC model's).
pub(crate) fn open_netdev(
    n: &NetConfig,
) -> Result<(Box<dyn NetBackend>, Option<Passt>), VirtioError> {
    let stream_err = |source| VirtioError::Stream {
        netdev: n.netdev.clone(),
        source,
    };
    let (backend, passt): (Box<dyn NetBackend>, _) = match &n.backend {
        Netdev::Tap(source) => (Box::new(open_tap(n, source)?), None),
        Netdev::Stream(s) => {
            let stream = match &s.addr {
                StreamAddr::Unix(path) => StreamNetdev::connect(
                    path,
                    s.reconnect
                        .map(|secs| std::time::Duration::from_secs(secs.into())),
                )
                .map_err(stream_err)?,
                StreamAddr::Fd(fd) => {
                    StreamNetdev::from_fd(adopt_fd(*fd, "the stream: the passed descriptor")?)
                        .map_err(stream_err)?
                }
            };
            tracing::info!(netdev = %n.netdev, "NIC on a stream socket");
            (Box::new(stream), None)
        }
        Netdev::User(u) => {
            let (passt, fd) = Passt::start(&n.netdev, u).map_err(|source| VirtioError::Passt {
                netdev: n.netdev.clone(),
                source,
            })?;
            let stream = StreamNetdev::from_fd(fd).map_err(stream_err)?;
            (Box::new(stream), Some(passt))
        }
    };
    Ok((backend, passt))
}

/// Takes ownership of a descriptor handed over on the command line
/// (`fd=N`), once it is known to be open.
fn adopt_fd(fd: i32, what: &'static str) -> Result<std::os::fd::OwnedFd, VirtioError> {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(VirtioError::Setup {
            what,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the descriptor is open (checked above) and was handed to
    // this process for this NIC alone (`fd=N` on the command line), so
    // taking ownership of it closes nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Opens the tap of a NIC (`ifname=` or a passed `fd=`).
fn open_tap(n: &NetConfig, source: &TapSource) -> Result<Tap, VirtioError> {
    let tap_err = |source| VirtioError::Tap {
        netdev: n.netdev.clone(),
        source,
    };
    let tap = match source {
        // The kernel picks the name (tap0, tap1, ...), as QEMU without ifname.
        TapSource::Name(name) => Tap::open(name.as_deref().unwrap_or("tap%d")).map_err(tap_err)?,
        TapSource::Fd(fd) => {
            Tap::from_fd(adopt_fd(*fd, "the tap: the passed descriptor")?).map_err(tap_err)?
        }
    };
    tracing::info!(netdev = %n.netdev, tap = tap.name(), "NIC on a tap");
    Ok(tap)
}

/// A virtio console whose port's chardev gets the guest's output and
/// feeds its input; a virtio-serial-device with no port drops output.
fn open_console(c: &ConsoleConfig) -> Result<(SharedVirtio, Option<Chardev>), VirtioError> {
    let Some(port) = &c.port else {
        return Ok((
            Arc::new(Mutex::new(Console::new(Box::new(std::io::sink())))),
            None,
        ));
    };
    let chardev_err = |source| VirtioError::Chardev {
        chardev: port.chardev.clone(),
        source,
    };
    let chardev = Chardev::open(&port.chardev, &port.backend).map_err(chardev_err)?;
    let out = chardev.writer().map_err(|source| VirtioError::Setup {
        what: "the console's output",
        source,
    })?;
    let console = Arc::new(Mutex::new(Console::new(out)));
    let input = console.clone();
    chardev
        .spawn_input(move |bytes| lock(&input).push_input(bytes))
        .map_err(|source| VirtioError::Setup {
            what: "the console's input",
            source,
        })?;
    Ok((console, Some(chardev)))
}
