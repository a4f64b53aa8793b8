//! Arbitrary guest memory under a virtio-blk queue: the input is copied over
//! the descriptor table, the rings and the buffers, then the device serves
//! the queue against an in-memory disk. Nothing may panic or hang, and the
//! disk may not change size.
#![no_main]

mod common;
mod ram_disk;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvirt_virtio::blk::{Block, BlockOptions};
use rvirt_virtio::virtio_queue::{Queue, QueueT};
use rvirt_virtio::vm_memory::GuestAddress;
use rvirt_virtio::{ActivateContext, VirtioDevice, VirtioInterrupt};

const DISK_SIZE: usize = 64 * 512;
const QUEUE_SIZE: u16 = 16;
const DESC: u64 = 0;
const AVAIL: u64 = 0x100;
const USED: u64 = 0x200;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let mem = common::memory(image);

    let mut queue = Queue::new(QUEUE_SIZE).unwrap();
    queue
        .try_set_desc_table_address(GuestAddress(DESC))
        .unwrap();
    queue
        .try_set_avail_ring_address(GuestAddress(AVAIL))
        .unwrap();
    queue.try_set_used_ring_address(GuestAddress(USED)).unwrap();
    queue.set_event_idx(mode & 1 != 0);
    queue.set_ready(true);

    let options = BlockOptions {
        read_only: mode & 2 != 0,
        serial: Some("fuzz".into()),
    };
    let disk = ram_disk::RamDisk::new(DISK_SIZE);
    let mut blk = Block::new(Box::new(disk), options).unwrap();
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(common::NoIrq);
    blk.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![queue],
        interrupt,
        acked_features: 1 << 32,
    })
    .unwrap();
    blk.process_queue(0);
    // A second kick after the first pass must be just as safe.
    blk.process_queue(0);
});
