//! QEMU's ISA debug console (`-debugcon`): a port whose writes go to a
//! character device, and whose reads return 0xe9 so that firmware can tell
//! it is there. SeaBIOS writes its debug log to port 0x402 when the read
//! answers; with no debug console there, the port floats high and SeaBIOS
//! writes nothing (one exit per byte saved).

use std::io::Write;

use rvirt_bus::BusDevice;

/// What a read returns (QEMU's `readback` property's default).
pub const READBACK: u8 = 0xe9;
/// QEMU's default port, and the one SeaBIOS writes to.
pub const QEMU_DEFAULT_PORT: u16 = 0xe9;
pub const SEABIOS_PORT: u16 = 0x402;

/// The debug console, writing to `out`.
pub struct DebugCon {
    out: Box<dyn Write + Send>,
}

impl DebugCon {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        DebugCon { out }
    }
}

impl BusDevice for DebugCon {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(READBACK);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        // Only the low byte is a character, as in QEMU; a host side that
        // is gone loses the log, not the guest.
        let _ = self.out.write_all(&data[..1]);
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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

    #[test]
    fn writes_go_out_and_reads_answer_the_readback() {
        let sink = Sink::default();
        let mut d = DebugCon::new(Box::new(sink.clone()));
        d.write(0, b"h");
        d.write(0, &[b'i', 0x12]);
        assert_eq!(&*sink.0.lock().unwrap(), b"hi");
        let mut b = [0u8; 2];
        d.read(0, &mut b);
        assert_eq!(b, [READBACK, READBACK]);
    }
}
