//! The watchdog (`-device i6300esb`): its BAR placed once; each boot a
//! fresh function (registers at reset, as QEMU's device reset leaves them)
//! counting on a timerfd that the boot's device event loop waits on. So a
//! watchdog costs no thread of its own (issue 21: threads per VMM), and an
//! idle one costs nothing but a descriptor.
//!
//! The timer runs on the host's monotonic clock; QEMU's runs on the
//! virtual clock, which stops while the VM is paused. A deadline that
//! passes during a pause fires once the event loop resumes.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use rvirt_devices::i6300esb::{self, I6300Esb, WatchdogTimer};
use rvirt_machine::SystemAllocator;
use rvirt_pci::SharedFunction;
use rvirt_platform::VmControl;
use rvirt_vmm_config::{PciAddr, WatchdogConfig};

use crate::event_loop::Subscriber;
use crate::VmmError;

/// The watchdog as placed.
pub(crate) struct WatchdogPlan {
    pub(crate) addr: PciAddr,
    pub(crate) id: Option<String>,
    /// Where firmware would put BAR 0.
    pub(crate) bar: u64,
    /// The previous-reboot flag, which outlives each boot's function.
    previous_reboot: Arc<AtomicBool>,
}

/// A function built for one boot, to put on the root bus.
pub(crate) struct BootWatchdog {
    pub(crate) function: SharedFunction,
    pub(crate) subscriber: Box<dyn Subscriber>,
}

impl WatchdogPlan {
    /// Places BAR 0 in the 32-bit window, or at `bar` (in the windows of
    /// the bridge it sits behind, which the caller placed).
    pub(crate) fn new(
        cfg: &WatchdogConfig,
        alloc: &mut SystemAllocator,
        bar: Option<u64>,
    ) -> Result<Self, VmmError> {
        let size = i6300esb::BAR_SIZE;
        let bar = match bar {
            Some(b) => b,
            None => {
                alloc
                    .allocate_mmio32(size, size)
                    .map_err(VmmError::Placement)?
                    .base
            }
        };
        Ok(WatchdogPlan {
            addr: cfg.addr,
            id: cfg.id.clone(),
            bar,
            previous_reboot: Arc::new(AtomicBool::new(false)),
        })
    }

    /// This boot's function and the subscriber that hears its timer.
    pub(crate) fn attach(&self, vm: Arc<dyn VmControl>) -> Result<BootWatchdog, VmmError> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(|e| VmmError::Setup {
            what: "the watchdog's timerfd",
            source: e.into(),
        })?;
        let fd = Arc::new(fd);
        let device = Arc::new(Mutex::new(I6300Esb::new(
            Box::new(TimerFd(fd.clone())),
            vm,
            self.previous_reboot.clone(),
        )));
        Ok(BootWatchdog {
            function: device.clone(),
            subscriber: Box::new(WatchdogSubscriber { device, fd }),
        })
    }
}

/// The counter's host timer: a timerfd, armed once (no interval).
struct TimerFd(Arc<OwnedFd>);

impl WatchdogTimer for TimerFd {
    fn arm(&mut self, after: Option<Duration>) {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = match after {
            // A zero it_value disarms: the shortest deadline is 1 ns.
            Some(d) => Timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()).max(i64::from(d.is_zero())),
            },
            None => zero,
        };
        let spec = Itimerspec {
            it_interval: zero,
            it_value: value,
        };
        if let Err(error) = timerfd_settime(self.0.as_fd(), TimerfdTimerFlags::empty(), &spec) {
            // Only a bad descriptor or value fails, neither of which a guest
            // can cause; the watchdog then never fires.
            tracing::error!(%error, "watchdog: cannot arm the timer");
        }
    }
}

/// The timer's expiries, delivered to the device.
struct WatchdogSubscriber {
    device: Arc<Mutex<I6300Esb>>,
    fd: Arc<OwnedFd>,
}

impl Subscriber for WatchdogSubscriber {
    fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
        vec![(self.fd.as_raw_fd(), 0)]
    }

    fn handle(&mut self, _token: u32) {
        let mut count = [0u8; 8];
        // Nonblocking: a timer re-armed since it became readable reads
        // EAGAIN, and that expiry no longer counts.
        match rustix::io::read(self.fd.as_fd(), &mut count) {
            Ok(8) => {}
            _ => return,
        }
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expired();
    }
}
