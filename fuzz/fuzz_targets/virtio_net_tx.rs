//! Arbitrary guest memory under virtio-net's transmit queue: the input is
//! the descriptor table, the rings and the frames; the backend swallows what
//! it gets (or fails, taking the link down). Nothing may panic or hang, and
//! every frame handed to the backend is a whole one: header included, at
//! most MAX_FRAME bytes.
#![no_main]

mod common;

use std::io;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::net::{Net, NetBackend, HDR_LEN, MAX_FRAME, RX_QUEUE, TX_QUEUE};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

/// Takes every frame; fails after `fail_after` of them when set.
struct Sink {
    sent: usize,
    fail_after: Option<usize>,
}

impl NetBackend for Sink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        assert!(frame.len() >= HDR_LEN && frame.len() <= MAX_FRAME);
        self.sent += 1;
        match self.fail_after {
            Some(n) if self.sent > n => Err(io::ErrorKind::BrokenPipe.into()),
            _ => Ok(()),
        }
    }
    fn recv(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let mem = common::memory(image);
    let backend = Sink {
        sent: 0,
        fail_after: (mode & 0x80 != 0).then_some(usize::from(mode >> 4 & 7)),
    };
    let mut net = Net::new(Box::new(backend), [0x52, 0x54, 0, 0, 0, 1]);
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    net.activate(ActivateContext {
        mem: mem.clone(),
        // The tx queue (under test) in slot 0, rx in slot 1.
        queues: vec![common::queue(1, 0), common::queue(0, mode)],
        interrupt,
        acked_features: common::VERSION_1 | net.device_features(),
    })
    .unwrap();
    net.process_queue(TX_QUEUE);
    // A second kick after the first pass must be just as safe.
    net.process_queue(TX_QUEUE);
    net.process_queue(RX_QUEUE);
});
