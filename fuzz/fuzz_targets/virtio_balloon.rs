//! Arbitrary guest memory under virtio-balloon's inflate, deflate and stats
//! queues. Inflate really madvises pages of the fuzz target's own guest
//! mapping (which may hold the rings themselves); that must stay inside it.
//! Nothing may panic or hang; the stats kept stay bounded; the device never
//! counts more inflated pages than PFNs it was sent.
#![no_main]

mod common;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::balloon::{
    Balloon, BalloonOptions, DEFLATE_QUEUE, F_STATS_VQ, INFLATE_QUEUE, MAX_PFNS_PER_CHAIN,
    MAX_STATS, STATS_QUEUE,
};
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let header = common::take(&mut data, 8);
    let &[mode, b0, b1, b2, c0, c1, c2, c3] = header else {
        return;
    };
    let mem = common::memory(data);
    let options = BalloonOptions {
        stats: mode & 1 != 0,
        deflate_on_oom: mode & 2 != 0,
    };
    let mut balloon = Balloon::new(options);
    let mut features = common::VERSION_1 | balloon.device_features();
    if mode & 4 != 0 {
        features &= !F_STATS_VQ;
    }
    let mut queues = vec![common::queue(0, b0), common::queue(1, b1)];
    if options.stats {
        queues.push(common::queue(2, b2));
    }
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    balloon
        .activate(ActivateContext {
            mem: mem.clone(),
            queues,
            interrupt,
            acked_features: features,
        })
        .unwrap();
    balloon.set_target_pages(u32::from_le_bytes([c0, c1, c2, c3]));
    // The driver writes `actual` (and anything else) in config space.
    balloon.write_config(u64::from(mode >> 4), &[c3, c2, c1, c0, mode]);
    let mut config = [0u8; 16];
    balloon.read_config(u64::from(c0), &mut config);
    for q in [STATS_QUEUE, INFLATE_QUEUE, DEFLATE_QUEUE] {
        balloon.process_queue(q);
    }
    balloon.request_stats();
    balloon.process_queue(STATS_QUEUE);
    balloon.request_stats();
    balloon.process_queue(INFLATE_QUEUE);
    balloon.process_queue(3);
    assert!(balloon.stats().len() <= MAX_STATS);
    // Each pass serves at most a ring's worth of chains.
    let max = 2 * 16 * MAX_PFNS_PER_CHAIN as u64;
    assert!(balloon.inflated_pages() <= max);
    balloon.reset();
    assert_eq!(balloon.inflated_pages(), 0);
});
