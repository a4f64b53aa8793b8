//! CMOS RTC (MC146818) at ports 0x70/0x71 with the host's real time.
//!
//! The clock registers are computed from the host clock plus an offset at
//! each read, so the guest always reads the current time without a timer
//! thread. A guest that sets the clock moves the offset, as QEMU's
//! `-rtc base=utc` does. Periodic, alarm and update interrupts are not
//! emulated yet; Linux only needs them for `hwclock --systohc` waits.

use std::time::{SystemTime, UNIX_EPOCH};

use rvirt_bus::BusDevice;
use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};

const INDEX: u64 = 0;
const DATA: u64 = 1;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

// Where the memory size and CPU count live (QEMU's and SeaBIOS's names).
const CMOS_BASE_MEM: usize = 0x15;
const CMOS_EXT_MEM: usize = 0x17;
const CMOS_EXT_MEM_COPY: usize = 0x30;
const CMOS_MEM_ABOVE_16M: usize = 0x34;
const CMOS_MEM_ABOVE_4G: usize = 0x5b;
/// The first two boot devices, and the third with the floppy check
/// (QEMU's and SeaBIOS's CMOS_BIOS_BOOTFLAG2 and BOOTFLAG1).
const CMOS_BOOT_DEVICES: usize = 0x3d;
const CMOS_BOOT_DEVICE_3: usize = 0x38;
const CMOS_SMP_COUNT: usize = 0x5f;

const B_24H: u8 = 1 << 1;
const B_BINARY: u8 = 1 << 2;
const D_VALID: u8 = 1 << 7;

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

// Civil-date conversions (proleptic Gregorian, days since 1970-01-01). Written
// out because they are a dozen lines and the device must not depend on the
// process's time zone (libc's localtime) or pull in a calendar crate.
fn days_to_civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn civil_to_days(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    /// The UTC date and time of `secs` seconds since the Unix epoch.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = days_to_civil(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Seconds since the Unix epoch.
    pub fn to_unix(&self) -> i64 {
        civil_to_days(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// Where the RTC reads the time from; a fixed clock in tests.
pub type Clock = Box<dyn Fn() -> i64 + Send>;

/// The host's real time in seconds since the epoch.
pub fn host_clock() -> Clock {
    Box::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    })
}

/// The DSDT node of the RTC (PNP0B00): `len` ports at `port`, on `irq`.
pub fn acpi_device(port: u16, len: u8, irq: u32) -> AcpiDevice {
    AcpiDevice {
        name: "RTC_".into(),
        hid: HardwareId::Eisa("PNP0B00"),
        uid: 0,
        resources: vec![Resource::Io { base: port, len }, Resource::EdgeIrq(irq)],
    }
}

/// CMOS RAM and RTC.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    offset: i64,
    clock: Clock,
}

impl Cmos {
    /// Creates the device reading time from `clock`.
    pub fn new(clock: Clock) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_A)] = 0x26; // 32.768 kHz base, 1024 Hz rate.
        ram[usize::from(REG_B)] = B_24H;
        ram[usize::from(REG_D)] = D_VALID;
        Cmos {
            index: 0,
            ram,
            offset: 0,
            clock,
        }
    }

    /// Writes the bytes where a PC's CMOS keeps the memory size and the CPU
    /// count, which firmware falls back to without fw_cfg (QEMU's
    /// `pc_cmos_init`): `low` bytes of RAM below 4 GiB, `high` above, and
    /// `cpus` CPUs at power-on.
    pub fn set_platform(&mut self, low: u64, high: u64, cpus: u32) {
        let mut set16 = |reg: usize, v: u64| {
            let v = v.min(0xffff) as u16;
            self.ram[reg..reg + 2].copy_from_slice(&v.to_le_bytes());
        };
        // Base memory in KiB (640), memory above 1 MiB in KiB (at most
        // 0xffff, so 64 MiB), memory above 16 MiB in 64 KiB units.
        set16(CMOS_BASE_MEM, 640);
        let ext = low.saturating_sub(1 << 20) >> 10;
        set16(CMOS_EXT_MEM, ext);
        set16(CMOS_EXT_MEM_COPY, ext);
        set16(CMOS_MEM_ABOVE_16M, low.saturating_sub(16 << 20) >> 16);
        // Memory above 4 GiB in 64 KiB units, 24 bits.
        let above = (high >> 16).min(0xff_ffff) as u32;
        self.ram[CMOS_MEM_ABOVE_4G..CMOS_MEM_ABOVE_4G + 3]
            .copy_from_slice(&above.to_le_bytes()[..3]);
        self.ram[CMOS_SMP_COUNT] = cpus.saturating_sub(1).min(0xff) as u8;
    }

    /// Writes the boot order where SeaBIOS reads it without a
    /// `bootorder` file (QEMU's `set_boot_dev`): the first three devices
    /// of `order` (`a`/`b` floppy, `c` disk, `d` CD-ROM, `n` network,
    /// anything else none) as nibbles of 0x3d and 0x38, the floppy
    /// signature check left on.
    pub fn set_boot_order(&mut self, order: &str) {
        let nibble = |c: Option<char>| match c {
            Some('a' | 'b') => 1u8,
            Some('c') => 2,
            Some('d') => 3,
            Some('n') => 4,
            _ => 0,
        };
        let mut c = order.chars();
        let (first, second, third) = (nibble(c.next()), nibble(c.next()), nibble(c.next()));
        self.ram[CMOS_BOOT_DEVICES] = second << 4 | first;
        self.ram[CMOS_BOOT_DEVICE_3] = third << 4;
    }

    fn now(&self) -> DateTime {
        DateTime::from_unix((self.clock)() + self.offset)
    }

    fn encode(&self, v: u32) -> u8 {
        let v = (v % 100) as u8;
        if self.ram[usize::from(REG_B)] & B_BINARY != 0 {
            v
        } else {
            (v / 10) << 4 | (v % 10)
        }
    }

    fn decode(&self, v: u8) -> u32 {
        if self.ram[usize::from(REG_B)] & B_BINARY != 0 {
            u32::from(v)
        } else {
            u32::from(v >> 4) * 10 + u32::from(v & 0xf)
        }
    }

    fn encode_hour(&self, hour: u32) -> u8 {
        if self.ram[usize::from(REG_B)] & B_24H != 0 {
            return self.encode(hour);
        }
        // 12-hour mode: 12, 1..11 with bit 7 set for PM.
        let pm = hour >= 12;
        let h = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h) | if pm { 0x80 } else { 0 }
    }

    fn read_reg(&mut self, reg: u8) -> u8 {
        let t = self.now();
        match reg {
            REG_SECONDS => self.encode(t.second),
            REG_MINUTES => self.encode(t.minute),
            REG_HOURS => self.encode_hour(t.hour),
            REG_WEEKDAY => self.encode(t.weekday + 1),
            REG_DAY => self.encode(t.day),
            REG_MONTH => self.encode(t.month),
            REG_YEAR => self.encode(t.year.rem_euclid(100) as u32),
            REG_CENTURY => self.encode(t.year.div_euclid(100) as u32),
            // Reading C acknowledges interrupts; none are raised.
            REG_C => 0,
            r => self.ram[usize::from(r & 0x7f)],
        }
    }

    fn write_reg(&mut self, reg: u8, value: u8) {
        let mut t = self.now();
        let v = self.decode(value & 0x7f);
        match reg {
            REG_SECONDS => t.second = v.min(59),
            REG_MINUTES => t.minute = v.min(59),
            REG_HOURS => {
                let pm = value & 0x80 != 0 && self.ram[usize::from(REG_B)] & B_24H == 0;
                t.hour = (v % 12 + if pm { 12 } else { 0 }).min(23);
                if self.ram[usize::from(REG_B)] & B_24H != 0 {
                    t.hour = v.min(23);
                }
            }
            REG_DAY => t.day = v.clamp(1, 31),
            REG_MONTH => t.month = v.clamp(1, 12),
            REG_YEAR => t.year = t.year - t.year.rem_euclid(100) + i64::from(v % 100),
            REG_CENTURY => t.year = i64::from(v) * 100 + t.year.rem_euclid(100),
            REG_C | REG_D | REG_WEEKDAY => return,
            r => {
                self.ram[usize::from(r & 0x7f)] = value;
                return;
            }
        }
        self.offset += t.to_unix() - self.now().to_unix();
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if let (DATA, Some(first)) = (offset, data.first_mut()) {
            *first = self.read_reg(self.index);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&b) = data.first() else { return };
        match offset {
            // Bit 7 of the index port is the NMI mask, not part of the index.
            INDEX => self.index = b & 0x7f,
            DATA => self.write_reg(self.index, b),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(c: &mut Cmos, reg: u8) -> u8 {
        c.write(INDEX, &[reg | 0x80]);
        let mut b = [0];
        c.read(DATA, &mut b);
        b[0]
    }

    // 2026-11-23 22:18:06 UTC, a Monday.
    const T: i64 = 1_795_472_286;

    #[test]
    fn conversions_round_trip() {
        let t = DateTime::from_unix(T);
        assert_eq!((t.year, t.month, t.day), (2026, 11, 23));
        assert_eq!((t.hour, t.minute, t.second, t.weekday), (22, 18, 6, 1));
        assert_eq!(t.to_unix(), T);
        for s in [0, 951_782_400, 4_107_542_399, -1] {
            assert_eq!(DateTime::from_unix(s).to_unix(), s);
        }
        assert_eq!(DateTime::from_unix(951_782_400).day, 29); // 2000-02-29
    }

    #[test]
    fn the_boot_order_is_where_seabios_reads_it() {
        let mut c = Cmos::new(Box::new(|| 0));
        c.set_boot_order("cad");
        assert_eq!((read(&mut c, 0x3d), read(&mut c, 0x38)), (0x12, 0x30));
        c.set_boot_order("d");
        assert_eq!((read(&mut c, 0x3d), read(&mut c, 0x38)), (0x03, 0x00));
    }

    #[test]
    fn memory_size_bytes_as_seabios_reads_them() {
        let mut c = Cmos::new(Box::new(|| T));
        c.set_platform(3 << 30, 2u64 << 30, 4);
        let r16 = |c: &mut Cmos, reg| u16::from(read(c, reg)) | u16::from(read(c, reg + 1)) << 8;
        assert_eq!(r16(&mut c, 0x15), 640);
        assert_eq!(r16(&mut c, 0x17), 0xffff);
        assert_eq!(r16(&mut c, 0x30), 0xffff);
        // SeaBIOS: RamSize = (0x34/0x35 << 16) + 16 MiB.
        let above16 = u64::from(r16(&mut c, 0x34));
        assert_eq!((above16 << 16) + (16 << 20), 3u64 << 30);
        let above4g = u64::from(read(&mut c, 0x5b))
            | u64::from(read(&mut c, 0x5c)) << 8
            | u64::from(read(&mut c, 0x5d)) << 16;
        assert_eq!(above4g << 16, 2u64 << 30);
        assert_eq!(read(&mut c, 0x5f), 3);
        // A small guest: the extended memory in KiB is exact.
        c.set_platform(32 << 20, 0, 1);
        assert_eq!(r16(&mut c, 0x17), 31 << 10);
        assert_eq!(r16(&mut c, 0x34), 256, "16 MiB above 16 MiB");
    }

    #[test]
    fn reads_bcd_and_binary() {
        let mut c = Cmos::new(Box::new(|| T));
        assert_eq!(read(&mut c, REG_YEAR), 0x26);
        assert_eq!(read(&mut c, REG_CENTURY), 0x20);
        assert_eq!(read(&mut c, REG_MONTH), 0x11);
        assert_eq!(read(&mut c, REG_HOURS), 0x22);
        assert_eq!(read(&mut c, REG_D), D_VALID);
        assert_eq!(read(&mut c, REG_A) & 0x80, 0, "never in update");
        c.write(INDEX, &[REG_B]);
        c.write(DATA, &[B_24H | B_BINARY]);
        assert_eq!(read(&mut c, REG_DAY), 23);
        assert_eq!(read(&mut c, REG_MINUTES), 18);
        c.write(INDEX, &[REG_B]);
        c.write(DATA, &[0]); // 12-hour BCD: 10 PM.
        assert_eq!(read(&mut c, REG_HOURS), 0x80 | 0x10);
    }

    #[test]
    fn guest_can_set_the_clock() {
        let mut c = Cmos::new(Box::new(|| T));
        c.write(INDEX, &[REG_YEAR]);
        c.write(DATA, &[0x30]);
        assert_eq!(read(&mut c, REG_YEAR), 0x30);
        assert_eq!(read(&mut c, REG_MONTH), 0x11);
        // Plain CMOS RAM keeps what is written.
        c.write(INDEX, &[0x40]);
        c.write(DATA, &[0xab]);
        assert_eq!(read(&mut c, 0x40), 0xab);
    }
}
