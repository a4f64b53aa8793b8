//! Arbitrary guest memory under virtio-rng's queue, with an entropy source
//! that may fail part-way. Nothing may panic or hang, and no request takes
//! more than MAX_BYTES_PER_REQUEST from the source.
#![no_main]

mod common;

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::rng::{Rng, MAX_BYTES_PER_REQUEST};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

/// Counts what it hands out; fails once `limit` bytes have gone, if set.
struct Source {
    given: Arc<AtomicUsize>,
    limit: Option<usize>,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let given = self.given.load(Ordering::Relaxed);
        if self.limit.is_some_and(|l| given >= l) {
            return Err(io::ErrorKind::Other.into());
        }
        buf.fill(0x5a);
        self.given.store(given + buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let mem = common::memory(image);
    let given = Arc::new(AtomicUsize::new(0));
    let source = Source {
        given: given.clone(),
        limit: (mode & 0x80 != 0).then_some(usize::from(mode & 0x70) * 64),
    };
    let mut rng = Rng::new(Box::new(source));
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    rng.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![common::queue(0, mode)],
        interrupt,
        acked_features: common::VERSION_1,
    })
    .unwrap();
    rng.process_queue(0);
    // One pass serves at most a ring's worth of requests.
    let size = usize::from(common::MAX_QUEUE_SIZE >> (mode & 3));
    assert!(given.load(Ordering::Relaxed) <= size * MAX_BYTES_PER_REQUEST);
    rng.process_queue(0);
    rng.process_queue(1);
});
