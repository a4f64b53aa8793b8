//! µs per 4 KiB virtio-blk request through the whole device path: the
//! driver side posts a chain (header, 4 KiB data, status) on a split queue
//! in guest memory and the device pops it, parses it, runs or submits it,
//! and (for asynchronous engines, once its eventfd fires, as the VMM's event
//! loop does) writes the status byte and adds it to the used ring.
//!
//! `file/<cache>/<engine>/<op>`: a 64 MiB raw image under the target
//! directory (ext4 here; tmpfs would do buffered I/O only on old kernels),
//! one request at a time (queue depth 1), so it is latency, syscalls and
//! thread wake-ups included.
//! `null/<engine>/<op>`: a backend that moves no data (sync and threads:
//! no syscall at all; io_uring: /dev/zero), i.e. the VMM-side cost.
//! `null-batch32/...`: 32 chains per kick, the per-request cost when the
//! guest keeps the queue busy.
//!
//! Run: `cargo bench -p rvirt-virtio --bench blk_request`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rvirt_block::{AioMode, DiskBackend, IoBuf, OpenOptions};
use rvirt_virtio::blk::{Block, BlockOptions, Disk};
use rvirt_virtio::virtio_queue::{Queue, QueueT};
use rvirt_virtio::vm_memory::{Bytes, GuestAddress};
use rvirt_virtio::{features, ActivateContext, Memory, VirtioDevice, VirtioInterrupt};
use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_FLUSH};

const QSIZE: u16 = 256;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const HDR: u64 = 0x1_0000;
const STATUS: u64 = 0x3_0000;
/// Page-aligned data buffers, one per chain slot: zero-copy even with O_DIRECT.
const DATA: u64 = 0x10_0000;
const REQ: u32 = 4096;
const IMAGE: u64 = 64 << 20;
const BATCH: u16 = 32;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

#[derive(Default)]
struct Irq(AtomicUsize);

impl VirtioInterrupt for Irq {
    fn signal_used_queue(&self, _: u16) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn signal_config_change(&self) {}
    fn signal_needs_reset(&self) {
        panic!("the benchmark's queue broke");
    }
}

/// Moves no data: what is left is the device's own work.
struct NullDisk {
    /// /dev/zero, for io_uring to submit to.
    zero: File,
}

impl DiskBackend for NullDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(IMAGE)
    }
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn read_vectored_at(&self, _: &[IoBuf], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_vectored_at(&self, _: &[IoBuf], _: u64, _: bool) -> io::Result<()> {
        Ok(())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.zero.as_raw_fd())
    }
}

/// The driver side: guest memory with a queue, and the device on it.
struct Rig {
    mem: Memory,
    blk: Block,
    avail: u16,
    next_sector: u64,
}

impl Rig {
    fn new(blk: Block) -> Self {
        let mem = Memory::from_ranges(&[(GuestAddress(0), 32 << 20)]).unwrap();
        let mut q = Queue::new(QSIZE).unwrap();
        q.set_size(QSIZE);
        q.set_desc_table_address(Some(DESC as u32), Some(0));
        q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
        q.set_used_ring_address(Some(USED as u32), Some(0));
        q.set_event_idx(true);
        q.set_ready(true);
        let mut blk = blk;
        // The features Linux acks: FLUSH and CONFIG_WCE (a driver that
        // acks neither gets no write cache, so every write would be made
        // durable, as in QEMU).
        let flush = 1 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_CONFIG_WCE;
        blk.activate(ActivateContext {
            mem: mem.clone(),
            queues: vec![q],
            interrupt: Arc::new(Irq::default()),
            acked_features: features::VERSION_1 | features::EVENT_IDX | flush,
        })
        .unwrap();
        Rig {
            mem,
            blk,
            avail: 0,
            next_sector: 0,
        }
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem
            .write_slice(&d, GuestAddress(DESC + 16 * u64::from(i)))
            .unwrap();
    }

    /// Posts `n` 4 KiB requests (one per slot, its own header, buffer and
    /// status byte) without kicking.
    fn post(&mut self, n: u16, write: bool) {
        let req_type: u32 = if write { 1 } else { 0 };
        for k in 0..n {
            let hdr = HDR + 16 * u64::from(k);
            let mut h = [0u8; 16];
            h[0..4].copy_from_slice(&req_type.to_le_bytes());
            h[8..16].copy_from_slice(&self.next_sector.to_le_bytes());
            self.next_sector = (self.next_sector + 8) % (IMAGE / 512);
            self.mem.write_slice(&h, GuestAddress(hdr)).unwrap();
            let head = 3 * k;
            let dir = if write { 0 } else { F_WRITE };
            self.desc(head, hdr, 16, F_NEXT, head + 1);
            self.desc(
                head + 1,
                DATA + u64::from(REQ) * u64::from(k),
                REQ,
                dir | F_NEXT,
                head + 2,
            );
            self.desc(head + 2, STATUS + u64::from(k), 1, F_WRITE, 0);
            let slot = AVAIL + 4 + 2 * u64::from(self.avail % QSIZE);
            self.mem.write_obj(head, GuestAddress(slot)).unwrap();
            self.avail = self.avail.wrapping_add(1);
        }
        self.mem
            .write_obj(self.avail, GuestAddress(AVAIL + 2))
            .unwrap();
    }

    /// Kicks the device and plays the event loop until all posted requests
    /// are back.
    fn run(&mut self) {
        self.blk.process_queue(0);
        loop {
            let used: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
            if used == self.avail {
                break;
            }
            let fd = self
                .blk
                .host_fd()
                .expect("requests in flight without a host fd");
            wait_readable(fd);
            self.blk.process_host_fd();
        }
        let status: u8 = self.mem.read_obj(GuestAddress(STATUS)).unwrap();
        assert_eq!(status, 0, "request failed");
    }
}

fn wait_readable(fd: RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, a live local.
    unsafe { libc::poll(&mut pfd, 1, 10_000) };
}

fn engines() -> [(&'static str, AioMode); 3] {
    [
        ("sync", AioMode::Sync),
        ("threads", AioMode::Threads),
        ("io_uring", AioMode::IoUring),
    ]
}

fn file_requests(c: &mut Criterion) {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let image = tempfile::NamedTempFile::new_in(dir).unwrap();
    // Written out (not sparse), so reads hit real blocks.
    let chunk = vec![0x5au8; 1 << 20];
    for i in 0..IMAGE / (1 << 20) {
        std::os::unix::fs::FileExt::write_all_at(image.as_file(), &chunk, i << 20).unwrap();
    }
    image.as_file().sync_all().unwrap();
    let mut g = c.benchmark_group("file");
    for (cache_name, direct) in [("writeback", false), ("none", true)] {
        for (engine_name, aio) in engines() {
            let opts = OpenOptions {
                direct,
                aio,
                ..Default::default()
            };
            let disk = Disk::open(image.path(), &opts).unwrap();
            let mut rig = Rig::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
            for (op, write) in [("read", false), ("write", true)] {
                let id = BenchmarkId::new(format!("{cache_name}/{engine_name}"), op);
                g.bench_function(id, |b| {
                    b.iter(|| {
                        rig.post(1, write);
                        rig.run();
                    })
                });
            }
        }
    }
    g.finish();
}

fn null_rig(aio: AioMode) -> Rig {
    let zero = File::options()
        .read(true)
        .write(true)
        .open("/dev/zero")
        .unwrap();
    let disk = Disk::new(Arc::new(NullDisk { zero }), aio).unwrap();
    Rig::new(Block::with_disk(disk, BlockOptions::default()).unwrap())
}

fn null_requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("null");
    for (engine_name, aio) in engines() {
        let mut rig = null_rig(aio);
        for (op, write) in [("read", false), ("write", true)] {
            g.bench_function(BenchmarkId::new(engine_name, op), |b| {
                b.iter(|| {
                    rig.post(1, write);
                    rig.run();
                })
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("null-batch32");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    for (engine_name, aio) in engines() {
        let mut rig = null_rig(aio);
        for (op, write) in [("read", false), ("write", true)] {
            g.bench_function(BenchmarkId::new(engine_name, op), |b| {
                b.iter(|| {
                    rig.post(BATCH, write);
                    rig.run();
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = null_requests, file_requests
}
criterion_main!(benches);
