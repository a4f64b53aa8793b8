//! Arbitrary guest memory under a virtio-blk queue: the input is copied over
//! the descriptor table, the rings and the buffers, then the device serves
//! the queue against an in-memory disk. Nothing may panic or hang, and the
//! disk may not change size.
#![no_main]

use std::io;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use rvirt_block::DiskBackend;
use rvirt_virtio::blk::{Block, BlockOptions};
use rvirt_virtio::virtio_queue::{Queue, QueueT};
use rvirt_virtio::vm_memory::{Bytes, GuestAddress};
use rvirt_virtio::{ActivateContext, Memory, VirtioDevice, VirtioInterrupt};

const MEM_SIZE: usize = 0x1_0000;
const DISK_SIZE: usize = 64 * 512;
const QUEUE_SIZE: u16 = 16;
const DESC: u64 = 0;
const AVAIL: u64 = 0x100;
const USED: u64 = 0x200;

struct RamDisk(Mutex<Vec<u8>>);

impl RamDisk {
    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        if end > DISK_SIZE {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(start..end)
    }
}

impl DiskBackend for RamDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(DISK_SIZE as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.0.lock().unwrap()[r]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len())?;
        self.0.lock().unwrap()[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        let r = self.range(offset, len)?;
        self.0.lock().unwrap()[r].fill(0);
        Ok(())
    }
}

struct NoIrq;

impl VirtioInterrupt for NoIrq {
    fn signal_used_queue(&self, _: u16) {}
    fn signal_config_change(&self) {}
    fn signal_needs_reset(&self) {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, image)) = data.split_first() else {
        return;
    };
    let mem = Memory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();

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
    let disk = RamDisk(Mutex::new(vec![0x5a; DISK_SIZE]));
    let mut blk = Block::new(Box::new(disk), options).unwrap();
    let interrupt: Arc<dyn VirtioInterrupt> = Arc::new(NoIrq);
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
