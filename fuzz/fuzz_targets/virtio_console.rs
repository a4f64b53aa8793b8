//! Arbitrary guest memory under virtio-console's receive and transmit
//! queues, with host input pushed before and after the driver's buffers are
//! looked at and an output chardev that may fail. Nothing may panic or hang;
//! the device never holds more than MAX_PENDING_INPUT bytes of input.
#![no_main]

mod common;

use std::io::{self, Write};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::console::{Console, MAX_BYTES_PER_TX, MAX_PENDING_INPUT, RX_QUEUE, TX_QUEUE};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

/// A chardev that takes at most one chain's worth per flush, or fails.
struct Chardev {
    fail: bool,
    since_flush: usize,
}

impl Write for Chardev {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.since_flush += buf.len();
        assert!(self.since_flush <= MAX_BYTES_PER_TX);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.since_flush = 0;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let header = common::take(&mut data, 4);
    let &[mode, rx_bits, input_len, big] = header else {
        return;
    };
    let mem = common::memory(data);
    let output = Chardev {
        fail: mode & 1 != 0,
        since_flush: 0,
    };
    let mut console = Console::new(Box::new(output));
    // Input typed before the driver is up waits for it.
    let input: Vec<u8> = (0..usize::from(input_len)).map(|i| i as u8).collect();
    let early = console.push_input(&input);
    assert_eq!(early, input.len());
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    console
        .activate(ActivateContext {
            mem: mem.clone(),
            queues: vec![common::queue(0, rx_bits), common::queue(1, mode >> 1)],
            interrupt,
            acked_features: common::VERSION_1,
        })
        .unwrap();
    console.process_queue(TX_QUEUE);
    console.process_queue(RX_QUEUE);
    // A flood of input: what is accepted is bounded.
    let flood = vec![0x61; usize::from(big) * 1024];
    console.push_input(&flood);
    assert!(console.pending_input() <= MAX_PENDING_INPUT);
    console.process_queue(RX_QUEUE);
    console.process_queue(TX_QUEUE);
    console.process_queue(2);
});
