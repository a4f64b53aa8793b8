//! QEMU's `i6300esb`: the watchdog timer of Intel's 6300ESB I/O hub as a
//! PCI function (8086:25ab, class 0x0880, BAR 0: 16 bytes of MMIO), as
//! QEMU 7.2's `hw/watchdog/wdt_i6300esb.c` models it.
//!
//! Two registers live in configuration space: ESB_CONFIG (0x60, 16-bit:
//! reboot disable, clock scale, stage-1 interrupt type) and ESB_LOCK (0x68,
//! 8-bit: lock, enable, free-run). The preloads (BAR 0 + 0x0 and 0x4) and
//! the reload register (0xc) answer only after the unlock sequence (0x80,
//! then 0x86, written to 0xc), and each write after it spends the unlock.
//! The counter runs in two stages: stage 1 ends in an interrupt QEMU never
//! raises (it prints that it would), stage 2 in the watchdog action, which
//! the machine chooses ([`VmRequest::Watchdog`]); the device then resets
//! itself, as QEMU's does.
//!
//! Time: a preload `p` counts `p << 15` ticks at the 1 kHz scale and
//! `p << 5` at 1 MHz, one tick being 30 ns (a 33 MHz PCI clock): about `p`
//! milliseconds or microseconds. The device never waits itself: it arms a
//! [`WatchdogTimer`] the VMM provides and hears [`I6300Esb::expired`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvirt_pci::bar::BarSpec;
use rvirt_pci::config::{ConfigSpace, Ids};
use rvirt_pci::PciFunction;
use rvirt_platform::{VmControl, VmRequest};

pub const VENDOR_ID: u16 = 0x8086;
pub const DEVICE_ID: u16 = 0x25ab;
/// PCI_CLASS_SYSTEM_OTHER.
pub const CLASS: u32 = 0x088000;
/// BAR 0 holds the timer registers.
pub const BAR: u8 = 0;
pub const BAR_SIZE: u64 = 16;

/// Configuration register: reboot disable, clock scale, interrupt type.
pub const ESB_CONFIG_REG: u16 = 0x60;
/// Configuration register: lock, enable, free-run.
pub const ESB_LOCK_REG: u16 = 0x68;
/// BAR 0 offsets.
pub const TIMER1_REG: u64 = 0x0;
pub const TIMER2_REG: u64 = 0x4;
pub const RELOAD_REG: u64 = 0xc;

/// ESB_LOCK bits.
pub const LOCK_FUNC: u8 = 1 << 2;
pub const LOCK_ENABLE: u8 = 1 << 1;
pub const LOCK_LOCK: u8 = 1 << 0;
/// ESB_CONFIG bits (QEMU's interrupt-type mask is 0x11, kept as it is).
pub const CONFIG_REBOOT: u16 = 1 << 5;
pub const CONFIG_FREQ: u16 = 1 << 2;
const CONFIG_INTTYPE: u16 = 0x11;
/// Reload register bits: the ping, and the previous-reboot flag (bit 9,
/// and bit 12 where Linux's driver looks for it).
pub const RELOAD_PING: u16 = 1 << 8;
const RELOAD_FLAG: u16 = 0x1200;
pub const UNLOCK1: u8 = 0x80;
pub const UNLOCK2: u8 = 0x86;

const PRELOAD_MASK: u32 = 0xfffff;
/// Nanoseconds per tick of the 33 MHz PCI clock, as QEMU counts it.
const TICK_NS: u64 = 30;

/// The host timer behind the counter.
pub trait WatchdogTimer: Send {
    /// Fires [`I6300Esb::expired`] once after `after`, replacing any armed
    /// deadline; `None` disarms.
    fn arm(&mut self, after: Option<Duration>);
}

/// The watchdog's state, as QEMU's `I6300State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    reboot_enabled: bool,
    /// The 1 MHz scale (else 1 kHz).
    fast: bool,
    int_type: u16,
    free_run: bool,
    locked: bool,
    enabled: bool,
    timer1: u32,
    timer2: u32,
    stage: u8,
    unlock: u8,
}

impl State {
    const RESET: State = State {
        reboot_enabled: true,
        fast: false,
        int_type: 0,
        free_run: false,
        locked: false,
        enabled: false,
        timer1: PRELOAD_MASK,
        timer2: PRELOAD_MASK,
        stage: 1,
        unlock: 0,
    };
}

/// The 6300ESB watchdog function.
pub struct I6300Esb {
    cfg: ConfigSpace,
    s: State,
    timer: Box<dyn WatchdogTimer>,
    vm: Arc<dyn VmControl>,
    /// Set when the watchdog caused the last reset; hardware (and QEMU's
    /// device reset) keeps it, so it outlives this boot's function.
    previous_reboot: Arc<AtomicBool>,
}

impl I6300Esb {
    /// The function at reset, counting on `timer`, acting through `vm`.
    pub fn new(
        timer: Box<dyn WatchdogTimer>,
        vm: Arc<dyn VmControl>,
        previous_reboot: Arc<AtomicBool>,
    ) -> Self {
        let ids = Ids {
            vendor: VENDOR_ID,
            device: DEVICE_ID,
            revision: 0,
            class: CLASS,
            // QEMU's default subsystem IDs for its PCI devices.
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, false);
        cfg.add_bar(usize::from(BAR), BarSpec::mem32(BAR_SIZE));
        I6300Esb {
            cfg,
            s: State::RESET,
            timer,
            vm,
            previous_reboot,
        }
    }

    /// The counter's length for `stage`, on the current scale.
    fn timeout(&self, stage: u8) -> Duration {
        let preload = u64::from(if stage <= 1 {
            self.s.timer1
        } else {
            self.s.timer2
        });
        let ticks = if self.s.fast {
            preload << 5
        } else {
            preload << 15
        };
        Duration::from_nanos(ticks * TICK_NS)
    }

    /// Starts counting `stage` (QEMU's `i6300esb_restart_timer`).
    fn restart(&mut self, stage: u8) {
        if !self.s.enabled {
            return;
        }
        self.s.stage = stage;
        let after = self.timeout(stage);
        self.timer.arm(Some(after));
    }

    /// Device reset: the timer stops, the registers return to their
    /// defaults; the previous-reboot flag stays.
    fn reset_state(&mut self) {
        self.timer.arm(None);
        self.s = State::RESET;
    }

    /// Whether the counter runs.
    pub fn enabled(&self) -> bool {
        self.s.enabled
    }

    /// The armed timer ran out.
    pub fn expired(&mut self) {
        if !self.s.enabled {
            return;
        }
        if self.s.stage == 1 {
            // QEMU raises nothing at the end of stage 1 (it only says it
            // would), whatever the interrupt type: neither does rvirt.
            if self.s.int_type == 0 {
                tracing::debug!("i6300esb: stage 1 expired (no interrupt, as QEMU)");
            }
            self.restart(2);
            return;
        }
        let free_run = self.s.free_run;
        if self.s.reboot_enabled {
            self.previous_reboot.store(true, Ordering::Relaxed);
            self.vm.request(VmRequest::Watchdog);
            self.reset_state();
        }
        if free_run {
            // QEMU's reset above clears `enabled`, so this restarts only
            // when reboot is disabled: the same here.
            self.restart(1);
        }
    }

    fn unlock_step(&mut self, offset: u64, value: u32) -> bool {
        if offset == RELOAD_REG && value == u32::from(UNLOCK1) {
            self.s.unlock = 1;
            true
        } else if offset == RELOAD_REG && value == u32::from(UNLOCK2) && self.s.unlock == 1 {
            self.s.unlock = 2;
            true
        } else {
            false
        }
    }

    fn write_word(&mut self, offset: u64, value: u16) {
        if self.unlock_step(offset, u32::from(value)) || self.s.unlock != 2 {
            return;
        }
        if offset == RELOAD_REG {
            if value & RELOAD_PING != 0 {
                self.restart(1);
            }
            if value & RELOAD_FLAG != 0 {
                self.previous_reboot.store(false, Ordering::Relaxed);
            }
        }
        self.s.unlock = 0;
    }

    fn write_long(&mut self, offset: u64, value: u32) {
        if self.unlock_step(offset, value) || self.s.unlock != 2 {
            return;
        }
        match offset {
            TIMER1_REG => self.s.timer1 = value & PRELOAD_MASK,
            TIMER2_REG => self.s.timer2 = value & PRELOAD_MASK,
            _ => {}
        }
        self.s.unlock = 0;
    }
}

impl PciFunction for I6300Esb {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        // As QEMU: the registers answer only to accesses of their own
        // width; anything else reads plain configuration space.
        match (offset, data.len()) {
            (ESB_CONFIG_REG, 2) => {
                let v = if self.s.reboot_enabled {
                    0
                } else {
                    CONFIG_REBOOT
                } | if self.s.fast { CONFIG_FREQ } else { 0 }
                    | self.s.int_type;
                data.copy_from_slice(&v.to_le_bytes());
            }
            (ESB_LOCK_REG, 1) => {
                data[0] = if self.s.free_run { LOCK_FUNC } else { 0 }
                    | if self.s.locked { LOCK_LOCK } else { 0 }
                    | if self.s.enabled { LOCK_ENABLE } else { 0 };
            }
            _ => self.cfg.read(offset, data),
        }
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        match (offset, data) {
            (ESB_CONFIG_REG, &[lo, hi]) => {
                let v = u16::from_le_bytes([lo, hi]);
                self.s.reboot_enabled = v & CONFIG_REBOOT == 0;
                self.s.fast = v & CONFIG_FREQ != 0;
                self.s.int_type = v & CONFIG_INTTYPE;
            }
            (ESB_LOCK_REG, &[v]) => {
                if self.s.locked {
                    return;
                }
                self.s.locked = v & LOCK_LOCK != 0;
                self.s.free_run = v & LOCK_FUNC != 0;
                let was = self.s.enabled;
                self.s.enabled = v & LOCK_ENABLE != 0;
                if !was && self.s.enabled {
                    self.restart(1);
                } else if !self.s.enabled {
                    self.timer.arm(None);
                }
            }
            _ => self.cfg.write(offset, data),
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        data.fill(0);
        // Only a 16-bit read of the reload register has anything: the
        // previous-reboot flag.
        if bar == BAR
            && offset == RELOAD_REG
            && data.len() == 2
            && self.previous_reboot.load(Ordering::Relaxed)
        {
            data.copy_from_slice(&RELOAD_FLAG.to_le_bytes());
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        if bar != BAR {
            return;
        }
        match *data {
            [v] => {
                self.unlock_step(offset, u32::from(v));
            }
            [a, b] => self.write_word(offset, u16::from_le_bytes([a, b])),
            [a, b, c, d] => self.write_long(offset, u32::from_le_bytes([a, b, c, d])),
            // Other widths do not reach a device on QEMU (its ops allow 1
            // to 4 bytes, and split 8): ignored.
            _ => tracing::debug!(
                offset,
                len = data.len(),
                "i6300esb: access of an odd width ignored"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A timer that records what it was armed with.
    #[derive(Clone, Default)]
    struct FakeTimer(Arc<Mutex<Vec<Option<Duration>>>>);

    impl WatchdogTimer for FakeTimer {
        fn arm(&mut self, after: Option<Duration>) {
            self.0.lock().unwrap().push(after);
        }
    }

    impl FakeTimer {
        fn last(&self) -> Option<Option<Duration>> {
            self.0.lock().unwrap().last().copied()
        }
    }

    #[derive(Default)]
    struct Requests(Mutex<Vec<VmRequest>>);

    impl VmControl for Requests {
        fn request(&self, r: VmRequest) {
            self.0.lock().unwrap().push(r);
        }
    }

    fn device() -> (I6300Esb, FakeTimer, Arc<Requests>, Arc<AtomicBool>) {
        let timer = FakeTimer::default();
        let vm = Arc::new(Requests::default());
        let flag = Arc::new(AtomicBool::new(false));
        let d = I6300Esb::new(Box::new(timer.clone()), vm.clone(), flag.clone());
        (d, timer, vm, flag)
    }

    fn unlock(d: &mut I6300Esb) {
        d.write_bar(BAR, RELOAD_REG, &[UNLOCK1]);
        d.write_bar(BAR, RELOAD_REG, &[UNLOCK2]);
    }

    fn preload(d: &mut I6300Esb, reg: u64, v: u32) {
        unlock(d);
        d.write_bar(BAR, reg, &v.to_le_bytes());
    }

    fn lock_reg(d: &mut I6300Esb) -> u8 {
        let mut b = [0];
        d.read_config(ESB_LOCK_REG, &mut b);
        b[0]
    }

    #[test]
    fn ids_and_bar() {
        let (d, ..) = device();
        let mut b = [0; 4];
        d.cfg.read(0, &mut b);
        assert_eq!(b, [0x86, 0x80, 0xab, 0x25]);
        d.cfg.read(8, &mut b);
        assert_eq!(u32::from_le_bytes(b) >> 8, CLASS);
        assert_eq!(d.cfg.interrupt_pin(), 0, "QEMU's has no INTx pin");
        assert_eq!(d.cfg.bar(0).map(|b| b.size), Some(BAR_SIZE));
    }

    #[test]
    fn enabling_arms_stage_one_at_the_preload() {
        let (mut d, timer, ..) = device();
        preload(&mut d, TIMER1_REG, 1000);
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE]);
        // 1000 << 15 ticks of 30 ns.
        assert_eq!(
            timer.last(),
            Some(Some(Duration::from_nanos((1000 << 15) * 30)))
        );
        assert_eq!(lock_reg(&mut d), LOCK_ENABLE);
        // The 1 MHz scale.
        d.write_config(ESB_CONFIG_REG, &CONFIG_FREQ.to_le_bytes());
        unlock(&mut d);
        d.write_bar(BAR, RELOAD_REG, &RELOAD_PING.to_le_bytes());
        assert_eq!(
            timer.last(),
            Some(Some(Duration::from_nanos((1000 << 5) * 30)))
        );
        let mut c = [0; 2];
        d.read_config(ESB_CONFIG_REG, &mut c);
        assert_eq!(u16::from_le_bytes(c), CONFIG_FREQ);
    }

    #[test]
    fn both_stages_then_the_action_then_reset() {
        let (mut d, timer, vm, flag) = device();
        preload(&mut d, TIMER1_REG, 1);
        preload(&mut d, TIMER2_REG, 2);
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE]);
        d.expired();
        assert_eq!(
            timer.last(),
            Some(Some(Duration::from_nanos((2 << 15) * 30)))
        );
        assert!(vm.0.lock().unwrap().is_empty(), "stage 1 does nothing");
        d.expired();
        assert_eq!(*vm.0.lock().unwrap(), [VmRequest::Watchdog]);
        assert!(flag.load(Ordering::Relaxed));
        // Reset after the action: disabled, disarmed, defaults back.
        assert_eq!(timer.last(), Some(None));
        assert_eq!(lock_reg(&mut d), 0);
        assert_eq!(d.s, State::RESET);
        // The flag reads back at 0xc (16-bit) until cleared.
        let mut w = [0; 2];
        d.read_bar(BAR, RELOAD_REG, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x1200);
        unlock(&mut d);
        d.write_bar(BAR, RELOAD_REG, &0x200u16.to_le_bytes());
        d.read_bar(BAR, RELOAD_REG, &mut w);
        assert_eq!(w, [0, 0]);
    }

    #[test]
    fn reboot_disabled_takes_no_action() {
        let (mut d, _, vm, _) = device();
        d.write_config(ESB_CONFIG_REG, &CONFIG_REBOOT.to_le_bytes());
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE | LOCK_FUNC]);
        d.expired();
        d.expired();
        assert!(vm.0.lock().unwrap().is_empty());
        // Free-running: back to stage 1.
        assert_eq!(d.s.stage, 1);
        assert!(d.enabled());
    }

    #[test]
    fn writes_without_unlock_change_nothing() {
        let (mut d, timer, ..) = device();
        d.write_bar(BAR, TIMER1_REG, &5u32.to_le_bytes());
        assert_eq!(d.s.timer1, PRELOAD_MASK);
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE]);
        let armed = timer.0.lock().unwrap().len();
        d.write_bar(BAR, RELOAD_REG, &RELOAD_PING.to_le_bytes());
        assert_eq!(
            timer.0.lock().unwrap().len(),
            armed,
            "a ping needs the unlock"
        );
        // 0x86 alone does not unlock; the unlock is spent by one write.
        d.write_bar(BAR, RELOAD_REG, &[UNLOCK2]);
        d.write_bar(BAR, TIMER1_REG, &5u32.to_le_bytes());
        assert_eq!(d.s.timer1, PRELOAD_MASK);
        preload(&mut d, TIMER1_REG, 0xfff_ffff);
        assert_eq!(d.s.timer1, PRELOAD_MASK, "20 bits only");
        d.write_bar(BAR, TIMER2_REG, &7u32.to_le_bytes());
        assert_eq!(d.s.timer2, PRELOAD_MASK, "the unlock was spent");
    }

    #[test]
    fn lock_holds_enable() {
        let (mut d, timer, ..) = device();
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE | LOCK_LOCK]);
        d.write_config(ESB_LOCK_REG, &[0]);
        assert!(d.enabled());
        assert!(matches!(timer.last(), Some(Some(_))));
    }

    #[test]
    fn hostile_accesses() {
        let (mut d, ..) = device();
        // Wrong widths at the registers fall through to plain config space
        // (read-only there), odd BAR widths and offsets are ignored.
        d.write_config(ESB_LOCK_REG, &[LOCK_ENABLE, 0]);
        d.write_config(ESB_CONFIG_REG, &[0xff]);
        assert!(!d.enabled());
        for off in [0u64, 3, 0xc, 0xf, 0x10, u64::MAX] {
            d.write_bar(BAR, off, &[0xff; 8]);
            d.write_bar(BAR, off, &[]);
            d.write_bar(7, off, &[0x80]);
            let mut b = [0xaa; 8];
            d.read_bar(BAR, off, &mut b);
            assert_eq!(b, [0; 8]);
        }
        d.expired();
        assert!(!d.enabled());
    }
}
