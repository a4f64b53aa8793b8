//! QEMU's `isa-parallel`: a PC parallel port (LPT1 at 0x378, IRQ 7) in
//! the "software" mode QEMU uses on any chardev that is not a host
//! parport: the data, status and control registers and the handshake a
//! polling driver runs (write the data, raise STROBE with SELECT and INIT
//! set: the byte goes to the host; reading status walks BUSY/ACK as
//! QEMU's `parallel_ioport_read_sw` does). No EPP or ECP registers (reads
//! there float high, writes are dropped), no bidirectional input.

use std::io::Write;

use rvirt_bus::BusDevice;
use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};
use rvirt_platform::InterruptLine;
use std::sync::Arc;

/// The port's eight I/O addresses (QEMU decodes all eight).
pub const LEN: u16 = 8;

pub const REG_DATA: u64 = 0;
pub const REG_STATUS: u64 = 1;
pub const REG_CONTROL: u64 = 2;

pub const STS_BUSY: u8 = 0x80;
pub const STS_ACK: u8 = 0x40;
pub const STS_ONLINE: u8 = 0x10;
pub const STS_ERROR: u8 = 0x08;
pub const STS_TMOUT: u8 = 0x01;

pub const CTR_DIR: u8 = 0x20;
pub const CTR_INTEN: u8 = 0x10;
pub const CTR_SELECT: u8 = 0x08;
pub const CTR_INIT: u8 = 0x04;
pub const CTR_STROBE: u8 = 0x01;

/// The parallel port, writing what the guest prints to `out`.
pub struct Parallel {
    dataw: u8,
    datar: u8,
    status: u8,
    control: u8,
    irq_pending: bool,
    irq: Option<Arc<dyn InterruptLine>>,
    out: Box<dyn Write + Send>,
}

/// The DSDT node QEMU gives the port: `LPT1`, PNP0400.
pub fn acpi_device(uid: u8, port: u16, irq: u32) -> AcpiDevice {
    AcpiDevice {
        name: format!("LPT{uid}"),
        hid: HardwareId::Eisa("PNP0400"),
        uid,
        resources: vec![
            Resource::Io {
                base: port,
                len: LEN as u8,
            },
            Resource::EdgeIrq(irq),
        ],
    }
}

impl Parallel {
    /// The port at reset, printing to `out`, interrupting on `irq`.
    pub fn new(irq: Option<Arc<dyn InterruptLine>>, out: Box<dyn Write + Send>) -> Self {
        let mut p = Parallel {
            dataw: 0,
            datar: 0,
            status: 0,
            control: 0,
            irq_pending: false,
            irq,
            out,
        };
        p.reset();
        p
    }

    /// Reset (QEMU's `parallel_reset`); the host side stays.
    pub fn reset(&mut self) {
        self.datar = 0xff;
        self.dataw = 0xff;
        self.status = STS_BUSY | STS_ACK | STS_ONLINE | STS_ERROR | STS_TMOUT;
        self.control = CTR_SELECT | CTR_INIT | 0xc0;
        self.irq_pending = false;
    }

    /// The line follows the pending interrupt. An ISA line is an edge to
    /// KVM's IOAPIC pin here: one interrupt per rise.
    fn update_irq(&mut self, was: bool) {
        let Some(irq) = &self.irq else { return };
        if self.irq_pending != was {
            if let Err(error) = irq.set_level(self.irq_pending) {
                tracing::debug!(%error, "parallel: interrupt not delivered");
            }
        }
    }

    fn write_control(&mut self, val: u8) {
        let val = val | 0xc0;
        let was = self.irq_pending;
        if val & CTR_INIT == 0 {
            self.status = STS_BUSY | STS_ACK | STS_ONLINE | STS_ERROR;
        } else if val & CTR_SELECT != 0 {
            if val & CTR_STROBE != 0 {
                self.status &= !STS_BUSY;
                if self.control & CTR_STROBE == 0 {
                    // A host that cannot take the byte (a closed pty, a
                    // full disk) loses it, as a printer nobody feeds.
                    let b = [self.dataw];
                    if let Err(error) = self.out.write_all(&b).and_then(|()| self.out.flush()) {
                        tracing::debug!(%error, "parallel output dropped");
                    }
                }
            } else if self.control & CTR_INTEN != 0 {
                self.irq_pending = true;
            }
        }
        self.update_irq(was);
        self.control = val;
    }

    fn read_status(&mut self) -> u8 {
        let ret = self.status;
        let was = self.irq_pending;
        self.irq_pending = false;
        if self.status & STS_BUSY == 0 && self.control & CTR_STROBE == 0 {
            // QEMU's walk: ACK drops on one read, then ACK and BUSY come
            // back on the next, so a driver polling for "not busy" and
            // "ack" sees both edges.
            if self.status & STS_ACK != 0 {
                self.status &= !STS_ACK;
            } else {
                self.status |= STS_ACK | STS_BUSY;
            }
        }
        self.update_irq(was);
        ret
    }
}

impl BusDevice for Parallel {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Byte registers: wider accesses read the first and float the rest.
        data.fill(0xff);
        let Some(first) = data.first_mut() else {
            return;
        };
        *first = match offset {
            REG_DATA if self.control & CTR_DIR != 0 => self.datar,
            REG_DATA => self.dataw,
            REG_STATUS => self.read_status(),
            REG_CONTROL => self.control,
            _ => 0xff,
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        match offset {
            REG_DATA => {
                let was = self.irq_pending;
                self.dataw = v;
                self.update_irq(was);
            }
            REG_CONTROL => self.write_control(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Line(Mutex<Vec<bool>>);

    impl InterruptLine for Line {
        fn trigger_mode(&self) -> rvirt_platform::TriggerMode {
            rvirt_platform::TriggerMode::Level
        }
        fn raise(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
        fn lower(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
    }

    fn rd(p: &mut Parallel, off: u64) -> u8 {
        let mut b = [0];
        p.read(off, &mut b);
        b[0]
    }

    /// What Linux's parport_pc and a simple polling driver do per byte.
    fn print(p: &mut Parallel, byte: u8) {
        p.write(REG_DATA, &[byte]);
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_STROBE]);
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT]);
    }

    #[test]
    fn reset_registers_as_qemu() {
        let mut p = Parallel::new(None, Box::new(Sink::default()));
        assert_eq!(rd(&mut p, REG_DATA), 0xff);
        assert_eq!(rd(&mut p, REG_STATUS), 0xd9);
        assert_eq!(rd(&mut p, REG_CONTROL), 0xcc);
        for off in 3..8 {
            assert_eq!(rd(&mut p, off), 0xff, "no EPP registers");
        }
    }

    #[test]
    fn strobed_bytes_reach_the_host_once() {
        let sink = Sink::default();
        let mut p = Parallel::new(None, Box::new(sink.clone()));
        for &b in b"hi\n" {
            print(&mut p, b);
        }
        // Holding STROBE high sends nothing more.
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_STROBE]);
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_STROBE]);
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n\n");
        // Without SELECT, or with INIT low, nothing is printed.
        p.write(REG_CONTROL, &[CTR_INIT]);
        p.write(REG_DATA, b"x");
        p.write(REG_CONTROL, &[CTR_INIT | CTR_STROBE]);
        p.write(REG_CONTROL, &[CTR_STROBE]);
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n\n");
    }

    #[test]
    fn status_walks_busy_and_ack() {
        let mut p = Parallel::new(None, Box::new(Sink::default()));
        print(&mut p, b'a');
        // After the strobe: not busy; the reads walk ACK low, then ACK and
        // BUSY back.
        let s1 = rd(&mut p, REG_STATUS);
        assert_eq!(s1 & STS_BUSY, 0);
        let s2 = rd(&mut p, REG_STATUS);
        assert_eq!(s2 & (STS_BUSY | STS_ACK), 0);
        let s3 = rd(&mut p, REG_STATUS);
        assert_eq!(s3 & (STS_BUSY | STS_ACK), STS_BUSY | STS_ACK);
        // INIT low resets the status.
        p.write(REG_CONTROL, &[0]);
        assert_eq!(rd(&mut p, REG_STATUS), 0xd8);
    }

    #[test]
    fn interrupt_when_enabled() {
        let line = Arc::new(Line::default());
        let mut p = Parallel::new(Some(line.clone()), Box::new(Sink::default()));
        // INTEN set, then a falling STROBE edge with INTEN held.
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_INTEN]);
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_INTEN]);
        assert_eq!(*line.0.lock().unwrap(), [true]);
        rd(&mut p, REG_STATUS);
        assert_eq!(*line.0.lock().unwrap(), [true, false]);
    }

    #[test]
    fn direction_and_odd_accesses() {
        let mut p = Parallel::new(None, Box::new(Sink::default()));
        p.write(REG_DATA, &[0x12]);
        assert_eq!(rd(&mut p, REG_DATA), 0x12);
        p.write(REG_CONTROL, &[CTR_SELECT | CTR_INIT | CTR_DIR]);
        assert_eq!(rd(&mut p, REG_DATA), 0xff, "input reads the (idle) lines");
        p.write(REG_DATA, &[]);
        p.write(u64::MAX, &[1, 2, 3]);
        let mut w = [0; 4];
        p.read(REG_CONTROL, &mut w);
        assert_eq!(w, [0xec, 0xff, 0xff, 0xff]);
        p.read(REG_DATA, &mut []);
    }
}
