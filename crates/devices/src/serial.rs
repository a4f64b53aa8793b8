//! COM port: vm-superio's 16550A state machine on the port I/O bus.

use std::io::{self, Write};

use rvirt_bus::BusDevice;

use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};

use crate::irq::LineTrigger;

/// The host side a serial port writes to.
pub type SerialOutput = Box<dyn Write + Send>;

/// A 16550A UART (8 registers) raising its IRQ through an interrupt line.
pub struct Serial {
    uart: vm_superio::Serial<LineTrigger, vm_superio::serial::NoEvents, SerialOutput>,
}

impl Serial {
    /// Creates a UART writing the guest's output to `out`.
    pub fn new(interrupt: LineTrigger, out: SerialOutput) -> Self {
        Serial {
            uart: vm_superio::Serial::new(interrupt, out),
        }
    }

    /// Returns the UART to its power-on state (guest reset), keeping the
    /// host side it writes to.
    pub fn reset(&mut self) {
        let trigger = self.uart.interrupt_evt().clone();
        let placeholder: SerialOutput = Box::new(io::sink());
        let old = std::mem::replace(
            &mut self.uart,
            vm_superio::Serial::new(trigger.clone(), placeholder),
        );
        self.uart = vm_superio::Serial::new(trigger, old.into_writer());
    }

    /// Queues host input for the guest. Returns how many bytes fit in the
    /// receive FIFO; the caller retries the rest later, which is how the
    /// guest's pace pushes back on the host side.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = self.uart.fifo_capacity().min(bytes.len());
        if room == 0 {
            return Ok(0);
        }
        self.uart
            .enqueue_raw_bytes(&bytes[..room])
            .map_err(|e| io::Error::other(format!("{e:?}")))
    }
}

/// The DSDT node of COM`uid` at `port` on `irq` (a 16550A: PNP0501).
pub fn acpi_device(uid: u8, port: u16, len: u8, irq: u32) -> AcpiDevice {
    AcpiDevice {
        name: format!("COM{uid}"),
        hid: HardwareId::Eisa("PNP0501"),
        uid,
        resources: vec![Resource::Io { base: port, len }, Resource::EdgeIrq(irq)],
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // The UART has byte registers only; wider accesses read the first
        // register and float the rest, as on an ISA bus.
        data.fill(0xff);
        if let (Some(first), Ok(reg)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(reg);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (Some(&value), Ok(reg)) = (data.first(), u8::try_from(offset)) else {
            return;
        };
        // A host-side write error (a closed pty, a full disk) must not stop
        // the guest: the byte is lost, as on a real line with nobody there.
        if let Err(e) = self.uart.write(reg, value) {
            tracing::debug!("serial output dropped: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_platform::InterruptLine;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use rvirt_platform::TriggerMode;

    /// An edge line that counts its interrupts, as an irqfd's counter does.
    #[derive(Default)]
    struct Edges(AtomicU64);
    impl InterruptLine for Edges {
        fn trigger_mode(&self) -> TriggerMode {
            TriggerMode::Edge
        }
        fn raise(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmits_and_receives() {
        let out = Sink::default();
        let evt = Arc::new(Edges::default());
        let trigger = LineTrigger::new(evt.clone());
        let mut s = Serial::new(trigger, Box::new(out.clone()));
        for b in b"hi" {
            s.write(0, &[*b]);
        }
        assert_eq!(&*out.0.lock().unwrap(), b"hi");
        // Enable the "received data available" interrupt, then feed input.
        s.write(1, &[0x01]);
        assert_eq!(s.enqueue_input(b"x").unwrap(), 1);
        assert!(evt.0.load(Ordering::SeqCst) >= 1);
        let mut lsr = [0u8];
        s.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut rbr = [0u8];
        s.read(0, &mut rbr);
        assert_eq!(rbr[0], b'x');
    }

    #[test]
    fn full_fifo_takes_what_fits() {
        let evt = Arc::new(Edges::default());
        let mut s = Serial::new(LineTrigger::new(evt), Box::new(io::sink()));
        let big = vec![b'a'; 1000];
        let n = s.enqueue_input(&big).unwrap();
        assert!(n > 0 && n < 1000);
        assert_eq!(s.enqueue_input(&big).unwrap(), 0);
    }
}
