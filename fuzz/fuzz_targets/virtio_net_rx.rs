//! Arbitrary guest memory under virtio-net's receive queue, fed frames of
//! input-chosen sizes (runts, end of file and oversized included) by a fake
//! backend, with and without MRG_RXBUF, EVENT_IDX and various ring sizes.
//! Nothing may panic or hang.
#![no_main]

mod common;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::net::{Net, NetBackend, F_MRG_RXBUF, RX_QUEUE, TX_QUEUE};
use rvirt_virtio::vm_memory::{Bytes, GuestAddress};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

/// Hands out the queued frame sizes, then WouldBlock (a size of 0 is end of
/// file, which takes the link down).
struct Frames(VecDeque<usize>);

impl NetBackend for Frames {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(len) = self.0.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let len = len.min(buf.len());
        for (i, b) in buf[..len].iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(len)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let header = common::take(&mut data, 9);
    let [mode, sizes @ ..] = header else { return };
    // Four frames of chosen sizes (up to MAX_FRAME and beyond).
    let frames = sizes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) * 2)
        .collect();
    // The first part is guest memory before any frame arrives; the second,
    // if any, is written over the rings afterwards (the driver posting new
    // buffers, or rewriting old ones, while a frame waits).
    let first = common::take(&mut data, 0x800);
    let mem = common::memory(first);
    let mut net = Net::new(Box::new(Frames(frames)), [0x52, 0x54, 0, 0, 0, 2]);
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    let rx = common::queue(0, *mode);
    let mut features = common::VERSION_1 | net.device_features();
    if mode & 0x10 == 0 {
        features &= !F_MRG_RXBUF;
    }
    net.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![rx, common::queue(1, 0)],
        interrupt,
        acked_features: features,
    })
    .unwrap();
    net.process_backend_rx();
    net.process_queue(RX_QUEUE);
    if !data.is_empty() {
        let n = data.len().min(common::MEM_SIZE);
        mem.write_slice(&data[..n], GuestAddress(0)).unwrap();
        net.process_queue(RX_QUEUE);
    }
    net.process_queue(TX_QUEUE);
    net.process_backend_rx();
});
