//! ACPI fixed-hardware power management: the PM1a event and control blocks
//! and the PM timer, in the layout the FADT describes.
//!
//! The guest powers off by writing SLP_TYP(S5) | SLP_EN to PM1a_CNT; the host
//! presses the power button by setting PWRBTN_STS, which raises the SCI while
//! the guest has PWRBTN_EN set.

use std::sync::Arc;
use std::time::Instant;

use rvirt_bus::BusDevice;
use rvirt_platform::{InterruptLine, VmControl, VmRequest};

/// Offsets inside the block. The event block is 4 bytes (status, enable),
/// the control block 2 bytes, the timer 4 bytes.
pub const PM1_STS: u64 = 0;
pub const PM1_EN: u64 = 2;
pub const PM1_CNT: u64 = 4;
pub const PM_TMR: u64 = 8;
/// Length of the whole block on the port bus.
pub const LEN: u64 = 12;

/// The SLP_TYP value the DSDT's `\_S5_` package announces: 0, as QEMU's
/// PIIX4/ICH9 PM (`rvirt_machine::layout::S5_SLP_TYP` is the same).
pub const S5_SLP_TYP: u16 = 0;

const PWRBTN: u16 = 1 << 8;
const TMR_STS: u16 = 1 << 0;
const WAK_STS: u16 = 1 << 15;
const SCI_EN: u16 = 1 << 0;
const SLP_EN: u16 = 1 << 13;
const SLP_TYP_SHIFT: u16 = 10;

/// The PM timer's fixed frequency, from the ACPI specification.
const PM_TIMER_HZ: u128 = 3_579_545;

/// pc's GPE0 block (QEMU's PIIX4 `GPE_BASE`/`GPE_LEN`): a 16-bit status
/// (write-one-to-clear) then a 16-bit enable register.
pub const GPE0_BASE: u16 = 0xafe0;
pub const GPE0_LEN: u16 = 4;

/// PM1a event/control registers and PM timer, and the GPE0 status and
/// enable bits ([`Gpe0`] puts them on the bus).
pub struct AcpiPm {
    status: u16,
    enable: u16,
    gpe_status: u16,
    gpe_enable: u16,
    control: u16,
    start: Instant,
    sci: Arc<dyn InterruptLine>,
    vm: Arc<dyn VmControl>,
}

impl AcpiPm {
    /// Creates the block; `sci` is the SCI line (GSI 9, level, active high).
    pub fn new(sci: Arc<dyn InterruptLine>, vm: Arc<dyn VmControl>) -> Self {
        AcpiPm {
            status: 0,
            enable: 0,
            gpe_status: 0,
            gpe_enable: 0,
            // The FADT has no SMI command port, so ACPI is on from the start
            // and SCI_EN reads as set.
            control: SCI_EN,
            start: Instant::now(),
            sci,
            vm,
        }
    }

    /// Presses the power button (QMP `system_powerdown`).
    pub fn press_power_button(&mut self) {
        self.status |= PWRBTN;
        self.update_sci();
    }

    /// Whether the guest has enabled the power button event, i.e. whether a
    /// press will be seen by an ACPI-aware guest.
    pub fn power_button_enabled(&self) -> bool {
        self.enable & PWRBTN != 0
    }

    /// Sets GPE0 status bits (an ACPI PCI hot-plug event is bit 1); the
    /// SCI is asserted while a set bit is enabled.
    pub fn raise_gpe(&mut self, bits: u16) {
        self.gpe_status |= bits;
        self.update_sci();
    }

    fn update_sci(&self) {
        let level =
            self.status & self.enable & PWRBTN != 0 || self.gpe_status & self.gpe_enable != 0;
        if let Err(error) = self.sci.set_level(level) {
            tracing::warn!(%error, "cannot drive the SCI");
        }
    }

    fn timer(&self) -> u32 {
        // 32-bit counter (TMR_VAL_EXT); wraps every ~20 minutes, as specified.
        (self.start.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000) as u32
    }

    fn reg_read(&self, reg: u64) -> u32 {
        match reg {
            PM1_STS => u32::from(self.status),
            PM1_EN => u32::from(self.enable),
            PM1_CNT => u32::from(self.control & !SLP_EN),
            PM_TMR => self.timer(),
            _ => 0,
        }
    }

    fn reg_write(&mut self, reg: u64, value: u16) {
        match reg {
            // Status bits are write-one-to-clear.
            PM1_STS => {
                self.status &= !(value & (PWRBTN | TMR_STS | WAK_STS));
                self.update_sci();
            }
            PM1_EN => {
                self.enable = value & (PWRBTN | TMR_STS);
                self.update_sci();
            }
            PM1_CNT => {
                self.control = (value & !SLP_EN) | SCI_EN;
                let slp_typ = (value >> SLP_TYP_SHIFT) & 7;
                if value & SLP_EN != 0 && slp_typ == S5_SLP_TYP {
                    self.vm.request(VmRequest::PowerOff);
                } else if value & SLP_EN != 0 {
                    // Only S5 is offered in the DSDT; other sleep types are
                    // ignored and the guest keeps running.
                    tracing::debug!(slp_typ, "unsupported sleep state requested");
                }
            }
            _ => {}
        }
    }
}

/// Splits an access into the register it starts in and the byte offset
/// inside that register, so byte and word accesses both work.
fn register_of(offset: u64) -> (u64, u64) {
    match offset {
        0..=1 => (PM1_STS, offset),
        2..=3 => (PM1_EN, offset - 2),
        4..=5 => (PM1_CNT, offset - 4),
        8..=11 => (PM_TMR, offset - 8),
        _ => (u64::MAX, 0),
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let (reg, shift) = register_of(offset);
        let value = self
            .reg_read(reg)
            .checked_shr(8 * shift as u32)
            .unwrap_or(0);
        for (i, b) in data.iter_mut().enumerate() {
            *b = value.checked_shr(8 * i as u32).unwrap_or(0) as u8;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (reg, shift) = register_of(offset);
        if reg == PM_TMR || reg == u64::MAX {
            return;
        }
        // Merge a partial write into the 16-bit register.
        let mut value = if reg == PM1_STS {
            0
        } else {
            self.reg_read(reg) as u16
        };
        for (i, &b) in data.iter().enumerate() {
            let bit = 8 * (shift + i as u64);
            if bit < 16 {
                value = (value & !(0xff << bit)) | (u16::from(b) << bit);
            }
        }
        self.reg_write(reg, value);
    }
}

/// The GPE0 block on the port bus, over the PM device's GPE bits (one lock:
/// the SCI is theirs together). Byte-wise as QEMU's: status bytes clear
/// the bits written as 1, enable bytes take the value.
pub struct Gpe0(pub Arc<std::sync::Mutex<AcpiPm>>);

impl Gpe0 {
    fn pm(&self) -> std::sync::MutexGuard<'_, AcpiPm> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BusDevice for Gpe0 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let pm = self.pm();
        let regs = [pm.gpe_status.to_le_bytes(), pm.gpe_enable.to_le_bytes()].concat();
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| regs.get(o + i))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut pm = self.pm();
        for (i, &b) in data.iter().enumerate() {
            let at = offset + i as u64;
            let shift = 8 * (at % 2);
            match at {
                0 | 1 => pm.gpe_status &= !(u16::from(b) << shift),
                2 | 3 => {
                    pm.gpe_enable = (pm.gpe_enable & !(0xff << shift)) | (u16::from(b) << shift)
                }
                _ => {}
            }
        }
        pm.update_sci();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Line(AtomicBool);
    impl InterruptLine for Line {
        fn trigger_mode(&self) -> rvirt_platform::TriggerMode {
            rvirt_platform::TriggerMode::Level
        }
        fn raise(&self) -> std::io::Result<()> {
            self.0.store(true, Ordering::SeqCst);
            Ok(())
        }
        fn lower(&self) -> std::io::Result<()> {
            self.0.store(false, Ordering::SeqCst);
            Ok(())
        }
    }
    #[derive(Default)]
    struct Requests(Mutex<Vec<VmRequest>>);
    impl VmControl for Requests {
        fn request(&self, r: VmRequest) {
            self.0.lock().unwrap().push(r);
        }
    }

    fn dev() -> (AcpiPm, Arc<Line>, Arc<Requests>) {
        let l = Arc::new(Line::default());
        let r = Arc::new(Requests::default());
        (AcpiPm::new(l.clone(), r.clone()), l, r)
    }

    #[test]
    fn s5_powers_off_other_states_do_not() {
        let (mut pm, _, r) = dev();
        // S3, and the SLP_TYP 5 rvirt once announced, keep the guest
        // running; SLP_TYP 0 without SLP_EN too.
        for other in [
            (3u16 << SLP_TYP_SHIFT) | SLP_EN,
            (5 << SLP_TYP_SHIFT) | SLP_EN,
            0,
        ] {
            pm.write(PM1_CNT, &other.to_le_bytes());
        }
        assert!(r.0.lock().unwrap().is_empty());
        let s5 = (S5_SLP_TYP << SLP_TYP_SHIFT) | SLP_EN;
        pm.write(PM1_CNT, &s5.to_le_bytes());
        assert_eq!(*r.0.lock().unwrap(), vec![VmRequest::PowerOff]);
        let mut cnt = [0u8; 2];
        pm.read(PM1_CNT, &mut cnt);
        assert_eq!(u16::from_le_bytes(cnt) & (SLP_EN | SCI_EN), SCI_EN);
    }

    #[test]
    fn power_button_raises_sci_only_when_enabled() {
        let (mut pm, line, _) = dev();
        pm.press_power_button();
        assert!(!line.0.load(Ordering::SeqCst));
        pm.write(PM1_EN, &PWRBTN.to_le_bytes());
        assert!(
            line.0.load(Ordering::SeqCst),
            "pending status fires on enable"
        );
        let mut sts = [0u8; 2];
        pm.read(PM1_STS, &mut sts);
        assert_eq!(u16::from_le_bytes(sts) & PWRBTN, PWRBTN);
        // Write-one-to-clear, as a byte access to the high half.
        pm.write(PM1_STS + 1, &[1]);
        assert!(!line.0.load(Ordering::SeqCst));
    }

    #[test]
    fn timer_advances() {
        let (mut pm, _, _) = dev();
        let mut a = [0u8; 4];
        pm.read(PM_TMR, &mut a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = [0u8; 4];
        pm.read(PM_TMR, &mut b);
        assert!(u32::from_le_bytes(b).wrapping_sub(u32::from_le_bytes(a)) >= 7000);
    }

    #[test]
    fn a_gpe_raises_the_sci_while_enabled_and_clears_on_one() {
        let (pm, line, _) = dev();
        let pm = Arc::new(Mutex::new(pm));
        let mut gpe = Gpe0(pm.clone());
        pm.lock().unwrap().raise_gpe(1 << 1);
        assert!(!line.0.load(Ordering::SeqCst), "not enabled yet");
        gpe.write(2, &[0x02]);
        assert!(line.0.load(Ordering::SeqCst));
        let mut regs = [0u8; 4];
        gpe.read(0, &mut regs);
        assert_eq!(regs, [0x02, 0, 0x02, 0]);
        // Writing 0 to status changes nothing; 1 clears and drops the SCI.
        gpe.write(0, &[0x00]);
        assert!(line.0.load(Ordering::SeqCst));
        gpe.write(0, &[0x02, 0x00]);
        assert!(!line.0.load(Ordering::SeqCst));
        // The power button still drives the same SCI.
        pm.lock().unwrap().write(PM1_EN, &PWRBTN.to_le_bytes());
        pm.lock().unwrap().press_power_button();
        assert!(line.0.load(Ordering::SeqCst));
        let mut past = [0xffu8; 2];
        gpe.read(3, &mut past);
        assert_eq!(past, [0, 0]);
    }
}
