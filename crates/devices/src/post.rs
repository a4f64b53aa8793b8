//! Port 0x80, where firmware and kernels write POST codes (and Linux its
//! I/O delays): writes go nowhere, reads float high.

use rvirt_bus::BusDevice;

/// The POST code port. Writes are counted so that a flood of them is
/// visible in the debug log without a line per write.
#[derive(Default)]
pub struct PostPort {
    writes: u64,
}

impl BusDevice for PostPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {
        self.writes += 1;
    }
}
