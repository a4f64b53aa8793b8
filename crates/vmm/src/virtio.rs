//! The virtio-mmio devices: built once from the command line (their host
//! files stay open across guest resets), put on each new machine's MMIO bus
//! with an irqfd and one ioeventfd per queue, and served by one event-loop
//! thread per boot ([`DeviceLoop`]). See docs/vmm-threads.md.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_ioctls::{IoEventAddress, VmFd};
use rvirt_bus::Bus;
use rvirt_machine::acpi::{AcpiConfig, MmioDevice};
use rvirt_machine::layout::VIRTIO_MMIO_START;
use rvirt_qmp::{BlockDeviceInfo, BlockInfo, ChardevInfo, EventBus};
use rvirt_virtio::balloon::{Balloon, BalloonOptions};
use rvirt_virtio::blk::{
    open_disk, Block, BlockError, BlockOptions, DiscardMode, DiskOpenOptions, OpenError,
};
use rvirt_virtio::console::Console;
use rvirt_virtio::mmio::{MMIO_SIZE, QUEUE_NOTIFY_OFFSET};
use rvirt_virtio::net::{Net, Tap, TapError};
use rvirt_virtio::rng::Rng;
use rvirt_virtio::{IrqTrigger, MmioTransport, VirtioDevice};
use rvirt_vmm_config::{ConsoleConfig, DiskConfig, NetConfig, TapSource, VirtioConfig, VmConfig};

use crate::balloon::{BalloonControl, BalloonDevice};
use crate::chardev::{Chardev, ChardevError};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// GSIs for the slots, in order: the IOAPIC pins no legacy device of this
/// machine uses (0-4, 8, 9 and 12 are taken; 14/15 would be IDE on a PC but
/// there is none).
const GSIS: [u32; 16] = [5, 6, 7, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23];

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
    OpenDisk(OpenError),
    #[error("'{}'", path.display())]
    Disk {
        path: PathBuf,
        #[source]
        source: BlockError,
    },
    #[error("netdev '{netdev}'")]
    Tap {
        netdev: String,
        #[source]
        source: TapError,
    },
    #[error("chardev '{chardev}'")]
    Chardev {
        chardev: String,
        #[source]
        source: ChardevError,
    },
    #[error("too many virtio devices: at most {}", GSIS.len())]
    TooMany,
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

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A device that panicked mid-request left its state as it was; serving
    // the other queues beats taking the VMM down.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A device model as the slots, the transports and the event loop share it.
type SharedDevice = Arc<Mutex<dyn VirtioDevice>>;

/// One device and the slot it lives in.
struct Slot {
    device: SharedDevice,
    base: u64,
    gsi: u32,
}

/// The virtio devices of the VM, which live as long as the VMM.
pub(crate) struct VirtioDevices {
    slots: Vec<Slot>,
    blocks: Vec<BlockInfo>,
    /// The consoles' host ends, open as long as the VMM.
    chardevs: Vec<Chardev>,
    balloon: Option<BalloonControl>,
    nics: Vec<NicControl>,
}

/// A NIC as QMP's `set_link` names it: by its netdev id or its device id.
/// Monitor threads lock the device directly (a leaf lock, as the balloon's).
#[derive(Clone)]
pub(crate) struct NicControl {
    names: Vec<String>,
    net: Arc<Mutex<Net>>,
}

impl NicControl {
    pub(crate) fn is_named(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Link status as the guest sees it in config space; a change raises a
    /// config interrupt. Down also drops what the guest sends, as QEMU.
    pub(crate) fn set_link(&self, up: bool) {
        lock(&self.net).set_link_up(up);
    }
}

/// The `-drive` / `-blockdev` options as the disk opener takes them; the
/// parser already refused any other spelling.
fn disk_options(d: &DiskConfig) -> DiskOpenOptions {
    DiskOpenOptions {
        read_only: d.readonly,
        cache: d
            .cache
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or_default(),
        aio: d
            .aio
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_default(),
        discard: if d.discard {
            DiscardMode::Unmap
        } else {
            DiscardMode::Ignore
        },
    }
}

/// Opens the tap of a NIC (`ifname=` or a passed `fd=`) and builds the
/// device on it.
fn open_nic(n: &NetConfig) -> Result<Net, VirtioError> {
    let tap_err = |source| VirtioError::Tap {
        netdev: n.netdev.clone(),
        source,
    };
    let tap = match &n.tap {
        // The kernel picks the name (tap0, tap1, ...), as QEMU without ifname.
        TapSource::Name(name) => Tap::open(name.as_deref().unwrap_or("tap%d")).map_err(tap_err)?,
        TapSource::Fd(fd) => {
            // SAFETY: fcntl(F_GETFD) only queries the descriptor.
            if unsafe { libc::fcntl(*fd, libc::F_GETFD) } < 0 {
                return Err(VirtioError::Setup {
                    what: "the tap: the passed descriptor",
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: the descriptor is open (checked above) and was handed
            // to this process for this NIC alone (`fd=N` on the command
            // line), so taking ownership of it closes nothing else.
            let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(*fd) };
            Tap::from_fd(owned).map_err(tap_err)?
        }
    };
    tracing::info!(netdev = %n.netdev, tap = tap.name(), "virtio-net on a tap");
    Ok(Net::new(Box::new(tap), n.mac))
}

/// A virtio console whose port's chardev gets the guest's output and
/// feeds its input; a virtio-serial-device with no port drops output.
fn open_console(c: &ConsoleConfig) -> Result<(SharedDevice, Option<Chardev>), VirtioError> {
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

impl VirtioDevices {
    /// Opens every device's host side; returns the option to blame on error.
    /// `bus` carries the balloon's BALLOON_CHANGE events.
    pub(crate) fn new(cfg: &VmConfig, bus: &EventBus) -> Result<Self, (&'static str, VirtioError)> {
        if cfg.virtio.len() > GSIS.len() {
            return Err(("-device", VirtioError::TooMany));
        }
        let mut slots = Vec::new();
        let mut blocks = Vec::new();
        let mut chardevs = Vec::new();
        let mut balloon = None;
        let mut nics = Vec::new();
        for (n, (dev, &gsi)) in cfg.virtio.iter().zip(GSIS.iter()).enumerate() {
            let device: SharedDevice = match dev {
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
                    Arc::new(Mutex::new(rng))
                }
                VirtioConfig::Blk(d) => {
                    let disk = open_disk(&d.path, &disk_options(d))
                        .map_err(|source| ("-drive", VirtioError::OpenDisk(source)))?;
                    let opts = BlockOptions {
                        read_only: d.readonly,
                        serial: d.serial.clone(),
                    };
                    let block = Block::with_disk(disk, opts).map_err(|source| {
                        (
                            "-drive",
                            VirtioError::Disk {
                                path: d.path.clone(),
                                source,
                            },
                        )
                    })?;
                    // As QEMU: a -drive is named by its id and gets an
                    // anonymous node; a -blockdev disk only by its node.
                    let (device, node_name) = if d.blockdev {
                        (String::new(), d.drive.clone())
                    } else {
                        (d.drive.clone(), format!("#block{:03}", n * 128 + 100))
                    };
                    blocks.push(BlockInfo {
                        device,
                        qdev: d.id.clone(),
                        kind: "unknown".into(),
                        removable: false,
                        locked: false,
                        inserted: Some(BlockDeviceInfo {
                            file: d.path.display().to_string(),
                            node_name: Some(node_name),
                            ro: d.readonly,
                            drv: "raw".into(),
                            encrypted: false,
                            detect_zeroes: "off".into(),
                            bps: 0,
                            bps_rd: 0,
                            bps_wr: 0,
                            iops: 0,
                            iops_rd: 0,
                            iops_wr: 0,
                            write_threshold: 0,
                        }),
                    });
                    Arc::new(Mutex::new(block))
                }
                VirtioConfig::Net(n) => {
                    let net = Arc::new(Mutex::new(open_nic(n).map_err(|e| ("-netdev", e))?));
                    nics.push(NicControl {
                        names: std::iter::once(n.netdev.clone())
                            .chain(n.id.clone())
                            .collect(),
                        net: net.clone(),
                    });
                    net
                }
                VirtioConfig::Console(c) => {
                    let (console, chardev) = open_console(c).map_err(|e| ("-chardev", e))?;
                    chardevs.extend(chardev);
                    console
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
                    balloon = Some(BalloonControl::new(device.clone(), cfg.mem_size));
                    device
                }
            };
            slots.push(Slot {
                device,
                base: VIRTIO_MMIO_START + n as u64 * MMIO_SIZE,
                gsi,
            });
        }
        Ok(VirtioDevices {
            slots,
            blocks,
            chardevs,
            balloon,
            nics,
        })
    }

    /// `query-block`'s answer.
    pub(crate) fn block_infos(&self) -> Vec<BlockInfo> {
        self.blocks.clone()
    }

    /// `query-chardev` entries for the consoles.
    pub(crate) fn chardev_infos(&self) -> Vec<ChardevInfo> {
        self.chardevs
            .iter()
            .map(|c| ChardevInfo {
                label: c.label().to_string(),
                filename: c.filename(),
                frontend_open: true,
            })
            .collect()
    }

    /// The NICs, for QMP `set_link`.
    pub(crate) fn nics(&self) -> Vec<NicControl> {
        self.nics.clone()
    }

    /// The balloon, for QMP `balloon` and `query-balloon`.
    pub(crate) fn balloon(&self) -> Option<BalloonControl> {
        self.balloon.clone()
    }

    /// What the kernel command line gets so that a kernel without ACPI
    /// (or with `acpi=off`) finds the devices too.
    pub(crate) fn cmdline(&self) -> String {
        self.slots
            .iter()
            .map(|s| format!("virtio_mmio.device=4K@{:#x}:{}", s.base, s.gsi))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Puts every device on a new machine: a fresh transport over `mem` at
    /// its slot, its irqfd and ioeventfds registered with `vm`, its state
    /// reset; then starts the thread that serves the queues (parked if
    /// `paused`).
    pub(crate) fn attach(
        &self,
        vm: &VmFd,
        mem: &rvirt_virtio::Memory,
        mmio: &mut Bus,
        platform: &mut AcpiConfig,
        paused: bool,
    ) -> Result<DeviceLoop, VirtioError> {
        let mut kicks = Vec::new();
        for s in &self.slots {
            // A reboot leaves the device as the old guest drove it.
            lock(&s.device).reset();
            let irq = EventFd::new(EFD_NONBLOCK).map_err(|source| VirtioError::Setup {
                what: "an irqfd",
                source,
            })?;
            vm.register_irqfd(&irq, s.gsi)
                .map_err(|e| VirtioError::Kvm {
                    what: "an irqfd",
                    source: std::io::Error::from_raw_os_error(e.errno()),
                })?;
            let transport = MmioTransport::new(s.device.clone(), mem.clone(), Arc::new(IrqFd(irq)));
            for q in 0..transport.queue_count() {
                let evt = EventFd::new(EFD_NONBLOCK).map_err(|source| VirtioError::Setup {
                    what: "an ioeventfd",
                    source,
                })?;
                let addr = IoEventAddress::Mmio(s.base + QUEUE_NOTIFY_OFFSET);
                vm.register_ioevent(&evt, &addr, q as u32)
                    .map_err(|e| VirtioError::Kvm {
                        what: "an ioeventfd",
                        source: std::io::Error::from_raw_os_error(e.errno()),
                    })?;
                kicks.push(Kick {
                    evt,
                    device: s.device.clone(),
                    queue: q as u16,
                });
            }
            // The slots are fixed and disjoint from everything else on
            // the MMIO bus: an overlap is a bug in the layout.
            mmio.insert(Arc::new(Mutex::new(transport)), s.base, MMIO_SIZE)
                .expect("virtio-mmio slots overlap");
            platform.virtio_mmio.push(MmioDevice {
                base: s.base,
                len: MMIO_SIZE,
                irq: s.gsi,
            });
        }
        let hosts = self.slots.iter().map(|s| s.device.clone()).collect();
        DeviceLoop::start(kicks, hosts, paused)
    }
}

/// An edge interrupt through an irqfd.
struct IrqFd(EventFd);

impl IrqTrigger for IrqFd {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// A queue's ioeventfd and the device it belongs to.
struct Kick {
    evt: EventFd,
    device: SharedDevice,
    queue: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Run,
    Pause,
    Exit,
}

struct LoopState {
    wanted: Wanted,
    /// The thread is parked (does no device work) until `wanted` changes.
    parked: bool,
}

struct Control {
    state: Mutex<LoopState>,
    changed: Condvar,
    wake: EventFd,
}

/// The epoll token of the control eventfd; queue kicks use their index,
/// devices' host descriptors `HOST` plus the device's index.
const WAKE: u64 = u64::MAX;
const HOST: u64 = 1 << 32;

/// The thread that does all device work of one boot. Dropping it stops and
/// joins the thread.
pub(crate) struct DeviceLoop {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceLoop {
    fn start(
        kicks: Vec<Kick>,
        hosts: Vec<SharedDevice>,
        paused: bool,
    ) -> Result<Self, VirtioError> {
        let setup = |what| move |source| VirtioError::Setup { what, source };
        let control = Arc::new(Control {
            state: Mutex::new(LoopState {
                wanted: if paused { Wanted::Pause } else { Wanted::Run },
                parked: false,
            }),
            changed: Condvar::new(),
            wake: EventFd::new(EFD_NONBLOCK).map_err(setup("the device loop's eventfd"))?,
        });
        let epoll = Epoll::new().map_err(setup("the device loop's epoll"))?;
        let add = |fd: i32, token: u64| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
        };
        add(control.wake.as_raw_fd(), WAKE).map_err(setup("the device loop's epoll"))?;
        for (i, k) in kicks.iter().enumerate() {
            add(k.evt.as_raw_fd(), i as u64).map_err(setup("the device loop's epoll"))?;
        }
        let c = control.clone();
        let thread = std::thread::Builder::new()
            .name("virtio".into())
            .spawn(move || serve(&c, &epoll, &kicks, HostFds::new(hosts)))
            .map_err(setup("the device loop thread"))?;
        Ok(DeviceLoop {
            control,
            thread: Some(thread),
        })
    }

    fn set(&self, wanted: Wanted) {
        lock(&self.control.state).wanted = wanted;
        self.control.changed.notify_all();
        if let Err(e) = self.control.wake.write(1) {
            tracing::warn!("failed to wake the device loop: {e}");
        }
    }

    /// Stops device work; returns once no request is being processed and
    /// none will be until [`DeviceLoop::resume`].
    pub(crate) fn pause(&self) {
        self.set(Wanted::Pause);
        let mut st = lock(&self.control.state);
        while !st.parked && st.wanted == Wanted::Pause {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return;
            }
            st = self
                .control
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Lets device work go on; kicks that came while paused are served now.
    pub(crate) fn resume(&self) {
        self.set(Wanted::Run);
    }
}

impl Drop for DeviceLoop {
    fn drop(&mut self) {
        self.set(Wanted::Exit);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the virtio device loop panicked");
            }
        }
    }
}

/// Applies the wanted state; returns false when the thread must exit.
fn obey(control: &Control) -> bool {
    let mut st = lock(&control.state);
    loop {
        match st.wanted {
            Wanted::Run => {
                st.parked = false;
                return true;
            }
            Wanted::Exit => return false,
            Wanted::Pause => {
                st.parked = true;
                control.changed.notify_all();
                st = control.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

/// The host descriptors the devices want polled ([`VirtioDevice::host_fd`]),
/// kept in step with the epoll set.
struct HostFds {
    devices: Vec<SharedDevice>,
    /// The descriptor registered for each device, if any.
    armed: Vec<Option<RawFd>>,
}

impl HostFds {
    fn new(devices: Vec<SharedDevice>) -> Self {
        let armed = vec![None; devices.len()];
        HostFds { devices, armed }
    }

    /// Asks every device what it wants polled now and updates the epoll
    /// set. Devices change their answer when they activate, reset, or run
    /// out of guest buffers (backpressure: the tap is then left unread);
    /// all of that follows a call into the device, after which this runs.
    fn rearm(&mut self, epoll: &Epoll) {
        for (i, dev) in self.devices.iter().enumerate() {
            let want = lock(dev).host_fd();
            if want == self.armed[i] {
                continue;
            }
            if let Some(old) = self.armed[i].take() {
                // Fails only if the descriptor was closed, which removed it.
                let _ = epoll.ctl(ControlOperation::Delete, old, EpollEvent::default());
            }
            if let Some(fd) = want {
                let ev = EpollEvent::new(EventSet::IN, HOST + i as u64);
                match epoll.ctl(ControlOperation::Add, fd, ev) {
                    Ok(()) => self.armed[i] = Some(fd),
                    Err(e) => tracing::warn!("device loop: cannot poll fd {fd}: {e}"),
                }
            }
        }
    }
}

/// The device loop: waits on every queue's ioeventfd and every host
/// descriptor a device asks for, and runs the device when one fires. Epoll
/// is level-triggered, so kicks that arrive while parked are seen after the
/// resume.
fn serve(control: &Control, epoll: &Epoll, kicks: &[Kick], mut hosts: HostFds) {
    if !obey(control) {
        return;
    }
    hosts.rearm(epoll);
    let mut events = vec![EpollEvent::default(); kicks.len() + hosts.devices.len() + 1];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("device loop: epoll failed: {e}");
                return;
            }
        };
        for ev in &events[..n] {
            let token = ev.data();
            if token == WAKE {
                // Consumed before reading the state, so a later change
                // wakes the loop again.
                let _ = control.wake.read();
                if !obey(control) {
                    return;
                }
                continue;
            }
            // A pause that arrived during this batch must stop the work
            // now, not after the batch.
            if lock(&control.state).wanted != Wanted::Run {
                continue;
            }
            if token >= HOST {
                if let Some(dev) = usize::try_from(token - HOST)
                    .ok()
                    .and_then(|i| hosts.devices.get(i))
                {
                    lock(dev).process_host_fd();
                }
                continue;
            }
            let Some(k) = usize::try_from(token).ok().and_then(|i| kicks.get(i)) else {
                continue;
            };
            // Nonblocking: a spurious wakeup reads EAGAIN and changes nothing.
            if k.evt.read().is_ok() {
                lock(&k.device).process_queue(k.queue);
            }
        }
        hosts.rearm(epoll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter {
        calls: Arc<Mutex<Vec<u16>>>,
    }

    impl VirtioDevice for Counter {
        fn device_type(&self) -> u32 {
            4
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[8, 8]
        }
        fn device_features(&self) -> u64 {
            0
        }
        fn read_config(&self, _: u64, _: &mut [u8]) {}
        fn activate(
            &mut self,
            _: rvirt_virtio::ActivateContext,
        ) -> Result<(), rvirt_virtio::ActivateError> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn process_queue(&mut self, queue: u16) {
            lock(&self.calls).push(queue);
        }
    }

    fn wait_for(calls: &Arc<Mutex<Vec<u16>>>, want: &[u16]) -> bool {
        for _ in 0..200 {
            if lock(calls).as_slice() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn kicks_run_the_queue_and_pause_holds_them() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let dev: SharedDevice = Arc::new(Mutex::new(Counter {
            calls: calls.clone(),
        }));
        let kick = |q| Kick {
            evt: EventFd::new(EFD_NONBLOCK).unwrap(),
            device: dev.clone(),
            queue: q,
        };
        let kicks = vec![kick(0), kick(1)];
        let fds: Vec<EventFd> = kicks.iter().map(|k| k.evt.try_clone().unwrap()).collect();
        // Started paused (as under -S): a kick waits for the resume.
        let lp = DeviceLoop::start(kicks, Vec::new(), true).unwrap();
        fds[1].write(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(lock(&calls).is_empty());
        lp.resume();
        assert!(wait_for(&calls, &[1]), "{:?}", lock(&calls));
        fds[0].write(1).unwrap();
        assert!(wait_for(&calls, &[1, 0]), "{:?}", lock(&calls));
        lp.pause();
        fds[0].write(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&calls).as_slice(), &[1, 0]);
        lp.resume();
        assert!(wait_for(&calls, &[1, 0, 0]), "{:?}", lock(&calls));
        drop(lp);
    }
}
