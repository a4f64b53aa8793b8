//! virtio-blk on a temp file and a mock queue, including hostile chains.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use virtio_bindings::virtio_blk::{VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use rvirt_block::{HostDisk, RawFile};

use super::request::kind;
use super::*;
use crate::test_util::*;

const HDR: u64 = DATA;
const BUF: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;
const SECTORS: u64 = 64;
const OK: u8 = VIRTIO_BLK_S_OK as u8;
const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

thread_local! {
    /// The engine `Image::block` builds devices with (tests run one per
    /// thread).
    static ENGINE: Cell<AioMode> = const { Cell::new(AioMode::Sync) };
    /// Whether `Image::block` opens the image with O_DIRECT.
    static DIRECT: Cell<bool> = const { Cell::new(false) };
}

fn engine() -> AioMode {
    ENGINE.with(Cell::get)
}

fn with_engine(aio: AioMode, f: impl FnOnce()) {
    ENGINE.with(|e| e.set(aio));
    f();
}

/// One test per engine for each function: `name::sync`, `name::threads`,
/// `name::io_uring`.
macro_rules! each_engine {
    ($(fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body() $body
            #[test]
            fn sync() {
                with_engine(AioMode::Sync, body)
            }
            #[test]
            fn threads() {
                with_engine(AioMode::Threads, body)
            }
            #[test]
            fn io_uring() {
                with_engine(AioMode::IoUring, body)
            }
        }
    )*};
}

/// Blocks until `fd` is readable or `timeout` passed.
fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one pollfd, a live local.
    unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
}

/// Plays the event loop until every request the device started finished,
/// the way the VMM does: wait for `host_fd`, then `process_host_fd`.
fn settle(blk: &mut Block) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while blk.in_flight() > 0 {
        assert!(Instant::now() < deadline, "requests never completed");
        let fd = blk.host_fd().expect("requests in flight need a host fd");
        if wait_readable(fd, Duration::from_millis(100)) {
            blk.process_host_fd();
        }
    }
}

/// Byte `i` of the image holds a value that identifies its sector and offset.
fn pattern(offset: u64) -> u8 {
    (offset / SECTOR_SIZE) as u8 ^ (offset as u8).wrapping_mul(7)
}

struct Image {
    file: tempfile::NamedTempFile,
}

impl Image {
    fn new(size: u64) -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..size).map(pattern).collect();
        file.as_file().write_all_at(&data, 0).unwrap();
        Image { file }
    }

    fn block(&self, options: BlockOptions) -> Block {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = DIRECT.with(Cell::get);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(if direct { libc::O_DIRECT } else { 0 })
            .open(self.file.path())
            .unwrap();
        let backend: Box<dyn DiskBackend> = if direct {
            // discard=unmap, flushes on.
            let disk = HostDisk::new(f, true, false).unwrap();
            Box::new(disk)
        } else {
            Box::new(RawFile::new(f))
        };
        match engine() {
            AioMode::Sync => Block::new(backend, options).unwrap(),
            aio => {
                let disk = super::Disk::new(Arc::from(backend), aio).unwrap();
                Block::with_disk(disk, options).unwrap()
            }
        }
    }

    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.file.as_file().read_exact_at(&mut v, offset).unwrap();
        v
    }
}

fn header(mem: &Memory, req_type: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&req_type.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
}

fn status(mem: &Memory) -> u8 {
    mem.read_obj(GuestAddress(STATUS)).unwrap()
}

/// Runs one chain on a fresh device; returns (status byte, used len).
struct Run {
    mem: Memory,
    disk: Image,
}

impl Run {
    fn new() -> Self {
        let mem = memory();
        // A status byte the device did not write shows up as 0xee.
        mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        Run {
            mem,
            disk: Image::new(SECTORS * SECTOR_SIZE),
        }
    }

    fn chain(&self, options: BlockOptions, descs: &[(u64, u32, u16)]) -> (u8, u32) {
        let mock = MockSplitQueue::new(&self.mem, 16);
        let mut blk = self.disk.block(options);
        activate(&mut blk, &self.mem, &[&mock], 0);
        add_chain(&mock, 0, descs);
        blk.process_queue(0);
        settle(&mut blk);
        assert_eq!(used_idx(&mock), 1, "the chain is always returned");
        (status(&self.mem), used(&mock, 0).1)
    }

    fn rw(&self, descs: &[(u64, u32, u16)]) -> (u8, u32) {
        self.chain(BlockOptions::default(), descs)
    }
}

fn ranges(mem: &Memory, ranges: &[(u64, u32, u32)]) -> u32 {
    for (i, &(sector, count, flags)) in ranges.iter().enumerate() {
        let mut r = [0u8; 16];
        r[0..8].copy_from_slice(&sector.to_le_bytes());
        r[8..12].copy_from_slice(&count.to_le_bytes());
        r[12..16].copy_from_slice(&flags.to_le_bytes());
        mem.write_slice(&r, GuestAddress(BUF + 16 * i as u64))
            .unwrap();
    }
    16 * ranges.len() as u32
}

#[test]
fn features_of_a_writable_disk() {
    let r = Run::new();
    let f = r.disk.block(BlockOptions::default()).device_features();
    for bit in [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_DISCARD,
        VIRTIO_BLK_F_WRITE_ZEROES,
    ] {
        assert_ne!(f & 1 << bit, 0, "bit {bit}");
    }
    assert_eq!(f & 1 << VIRTIO_BLK_F_RO, 0);
}

#[test]
fn config_space_holds_capacity_and_limits() {
    let disk = Image::new(100 * 512 + 100);
    let blk = disk.block(BlockOptions::default());
    assert_eq!(blk.capacity(), 100, "a partial last sector is not visible");
    let mut cap = [0u8; 8];
    blk.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 100);
    let mut seg = [0u8; 4];
    blk.read_config(12, &mut seg);
    assert_eq!(u32::from_le_bytes(seg), SEG_MAX);
    // Narrow reads, reads straddling the end and far past it.
    let mut one = [0u8; 1];
    blk.read_config(0, &mut one);
    assert_eq!(one, [100]);
    let mut tail = [0xffu8; 8];
    blk.read_config(CONFIG_SIZE as u64 - 4, &mut tail);
    assert_eq!(&tail[4..], &[0; 4]);
    let mut far = [0xffu8; 4];
    blk.read_config(u64::MAX, &mut far);
    assert_eq!(far, [0; 4]);
}

/// Builds a chain with explicit `next` fields (so it can loop or dangle).
fn raw_chain(r: &Run, descs: &[(u64, u32, u16, u16)]) -> (u8, u32) {
    let mock = MockSplitQueue::new(&r.mem, 16);
    let mut blk = r.disk.block(BlockOptions::default());
    let irq = activate(&mut blk, &r.mem, &[&mock], 0);
    let raw: Vec<_> = descs.iter().map(|&(a, l, f, n)| desc(a, l, f, n)).collect();
    mock.add_desc_chains(&raw, 0).unwrap();
    blk.process_queue(0);
    settle(&mut blk);
    assert!(!irq.needs_reset.load(Ordering::SeqCst));
    assert_eq!(used_idx(&mock), 1);
    (status(&r.mem), used(&mock, 0).1)
}

// Every request path, once per engine (sync, threads, io_uring).
each_engine! {
    fn read_sectors_across_two_buffers() {
        let r = Run::new();
        header(&r.mem, kind::IN, 2);
        let (st, len) = r.rw(&[
            (HDR, 16, 0),
            (BUF, 512, WRITE),
            (BUF + 0x1000, 512, WRITE),
            (STATUS, 1, WRITE),
        ]);
        assert_eq!((st, len), (OK, 1025));
        let mut a = vec![0u8; 512];
        r.mem.read_slice(&mut a, GuestAddress(BUF)).unwrap();
        assert_eq!(a, r.disk.read(1024, 512));
        r.mem
            .read_slice(&mut a, GuestAddress(BUF + 0x1000))
            .unwrap();
        assert_eq!(a, r.disk.read(1536, 512));
    }

    fn header_data_and_status_may_share_descriptors() {
        let r = Run::new();
        // Header and the status byte around one sector, in two descriptors.
        header(&r.mem, kind::IN, 1);
        let (st, len) = r.rw(&[(HDR, 16, 0), (BUF, 513, WRITE)]);
        assert_eq!((st, len), (0xee, 513));
        let s: u8 = r.mem.read_obj(GuestAddress(BUF + 512)).unwrap();
        assert_eq!(s, OK);
        let mut a = vec![0u8; 512];
        r.mem.read_slice(&mut a, GuestAddress(BUF)).unwrap();
        assert_eq!(a, r.disk.read(512, 512));
    }

    fn write_sectors() {
        let r = Run::new();
        header(&r.mem, kind::OUT, 5);
        r.mem.write_slice(&[0xab; 1024], GuestAddress(BUF)).unwrap();
        let (st, len) = r.rw(&[(HDR, 16, 0), (BUF, 1024, 0), (STATUS, 1, WRITE)]);
        assert_eq!((st, len), (OK, 1));
        assert_eq!(r.disk.read(5 * 512, 1024), vec![0xab; 1024]);
        // Neighbours untouched.
        assert_eq!(
            r.disk.read(4 * 512, 512),
            Image::new(SECTORS * 512).read(4 * 512, 512)
        );
        assert_eq!(r.disk.read(7 * 512, 1)[0], pattern(7 * 512));
    }

    fn flush() {
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        assert_eq!(r.rw(&[(HDR, 16, 0), (STATUS, 1, WRITE)]), (OK, 1));
    }

    fn get_id_returns_the_padded_serial() {
        let r = Run::new();
        header(&r.mem, kind::GET_ID, 0);
        r.mem.write_slice(&[0xff; 20], GuestAddress(BUF)).unwrap();
        let options = BlockOptions {
            serial: Some("rvirt-disk-0".into()),
            ..Default::default()
        };
        let (st, len) = r.chain(
            options,
            &[(HDR, 16, 0), (BUF, 20, WRITE), (STATUS, 1, WRITE)],
        );
        assert_eq!((st, len), (OK, 21));
        let mut id = [0u8; 20];
        r.mem.read_slice(&mut id, GuestAddress(BUF)).unwrap();
        assert_eq!(&id[..12], b"rvirt-disk-0");
        assert_eq!(&id[12..], &[0; 8]);
    }

    fn write_zeroes_zeroes_the_ranges() {
        let r = Run::new();
        header(&r.mem, kind::WRITE_ZEROES, 0);
        let len = ranges(&r.mem, &[(8, 8, 0), (20, 1, 0)]);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, len, 0), (STATUS, 1, WRITE)]),
            (OK, 1)
        );
        assert_eq!(r.disk.read(8 * 512, 8 * 512), vec![0; 8 * 512]);
        assert_eq!(r.disk.read(20 * 512, 512), vec![0; 512]);
        assert_eq!(r.disk.read(16 * 512, 1)[0], pattern(16 * 512));
        assert_eq!(
            r.disk.file.as_file().metadata().unwrap().len(),
            SECTORS * 512
        );
    }

    fn discard_punches_a_hole_and_keeps_the_size() {
        let r = Run::new();
        header(&r.mem, kind::DISCARD, 0);
        let len = ranges(&r.mem, &[(16, 16, 0)]);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, len, 0), (STATUS, 1, WRITE)]),
            (OK, 1)
        );
        // ext4 and tmpfs punch holes, which read back as zeroes.
        assert_eq!(r.disk.read(16 * 512, 16 * 512), vec![0; 16 * 512]);
        assert_eq!(r.disk.read(32 * 512, 1)[0], pattern(32 * 512));
        assert_eq!(
            r.disk.file.as_file().metadata().unwrap().len(),
            SECTORS * 512
        );
    }

    fn bad_discard_ranges_fail() {
        for (ranges_list, why) in [
            (vec![(60, 8, 0)], "beyond the end"),
            (vec![(u64::MAX, 1, 0)], "sector overflow"),
            (vec![(0, 1, 1)], "unmap flag on discard"),
            (vec![(0, 1, 4)], "unknown flag"),
            (vec![(0, 1, 0); 17], "too many ranges"),
        ] {
            let r = Run::new();
            header(&r.mem, kind::DISCARD, 0);
            let len = ranges(&r.mem, &ranges_list);
            let got = r.rw(&[(HDR, 16, 0), (BUF, len, 0), (STATUS, 1, WRITE)]);
            assert_eq!(got, (IOERR, 1), "{why}");
            assert_eq!(r.disk.read(0, 1)[0], pattern(0), "{why}");
        }
        // A payload that is not a whole number of ranges.
        let r = Run::new();
        header(&r.mem, kind::WRITE_ZEROES, 0);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, 20, 0), (STATUS, 1, WRITE)]),
            (IOERR, 1)
        );
    }

    fn read_only_disk_refuses_changes_but_reads() {
        let ro = BlockOptions {
            read_only: true,
            ..Default::default()
        };
        let r = Run::new();
        header(&r.mem, kind::OUT, 0);
        r.mem.write_slice(&[0xab; 512], GuestAddress(BUF)).unwrap();
        let got = r.chain(
            ro.clone(),
            &[(HDR, 16, 0), (BUF, 512, 0), (STATUS, 1, WRITE)],
        );
        assert_eq!(got, (IOERR, 1));
        assert_eq!(r.disk.read(0, 512), Image::new(512).read(0, 512));

        for k in [kind::DISCARD, kind::WRITE_ZEROES] {
            header(&r.mem, k, 0);
            let len = ranges(&r.mem, &[(0, 1, 0)]);
            let got = r.chain(
                ro.clone(),
                &[(HDR, 16, 0), (BUF, len, 0), (STATUS, 1, WRITE)],
            );
            assert_eq!(got, (IOERR, 1));
            assert_eq!(r.disk.read(0, 1)[0], pattern(0));
        }

        header(&r.mem, kind::IN, 0);
        let got = r.chain(
            ro.clone(),
            &[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)],
        );
        assert_eq!(got, (OK, 513));
        header(&r.mem, kind::FLUSH, 0);
        assert_eq!(
            r.chain(ro.clone(), &[(HDR, 16, 0), (STATUS, 1, WRITE)]),
            (OK, 1)
        );

        let blk = r.disk.block(ro);
        let f = blk.device_features();
        assert_ne!(f & 1 << VIRTIO_BLK_F_RO, 0);
        assert_eq!(
            f & (1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES),
            0
        );
    }

    fn out_of_range_requests_fail() {
        for (k, sector, len) in [
            (kind::IN, SECTORS, 512),
            (kind::IN, SECTORS - 1, 1024),
            (kind::IN, u64::MAX, 512),
            (kind::OUT, SECTORS, 512),
            (kind::OUT, u64::MAX / 512 + 1, 512),
        ] {
            let r = Run::new();
            header(&r.mem, k, sector);
            let dir = if k == kind::IN { WRITE } else { 0 };
            let got = r.rw(&[(HDR, 16, 0), (BUF, len, dir), (STATUS, 1, WRITE)]);
            assert_eq!(got, (IOERR, 1), "type {k} sector {sector}");
            assert_eq!(
                r.disk.file.as_file().metadata().unwrap().len(),
                SECTORS * 512
            );
        }
    }

    fn data_not_a_multiple_of_512_fails() {
        let r = Run::new();
        header(&r.mem, kind::IN, 0);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, 100, WRITE), (STATUS, 1, WRITE)]),
            (IOERR, 1)
        );
        header(&r.mem, kind::OUT, 0);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, 513, 0), (STATUS, 1, WRITE)]),
            (IOERR, 1)
        );
        assert_eq!(r.disk.read(0, 1)[0], pattern(0));
    }

    fn unknown_request_type_is_unsupported() {
        let r = Run::new();
        header(&r.mem, 99, 0);
        assert_eq!(r.rw(&[(HDR, 16, 0), (STATUS, 1, WRITE)]), (UNSUPP, 1));
    }

    fn short_header_fails() {
        let r = Run::new();
        header(&r.mem, kind::IN, 0);
        assert_eq!(r.rw(&[(HDR, 8, 0), (STATUS, 1, WRITE)]), (IOERR, 1));
        // No readable header at all.
        assert_eq!(r.rw(&[(STATUS, 1, WRITE)]), (IOERR, 1));
    }

    fn header_in_a_device_writable_buffer_fails() {
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        assert_eq!(r.rw(&[(HDR, 16, WRITE), (STATUS, 1, WRITE)]), (IOERR, 1));
    }

    fn data_in_the_wrong_direction_fails() {
        let r = Run::new();
        // A read whose data buffer is device-readable.
        header(&r.mem, kind::IN, 0);
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, 512, 0), (STATUS, 1, WRITE)]),
            (IOERR, 1)
        );
        // A write whose data buffer is device-writable: the disk must not change.
        header(&r.mem, kind::OUT, 0);
        r.mem.write_slice(&[0xab; 512], GuestAddress(BUF)).unwrap();
        assert_eq!(
            r.rw(&[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)]),
            (IOERR, 1)
        );
        assert_eq!(r.disk.read(0, 1)[0], pattern(0));
        // A readable descriptor after a writable one.
        header(&r.mem, kind::FLUSH, 0);
        assert_eq!(
            r.rw(&[
                (HDR, 16, 0),
                (BUF, 4, WRITE),
                (BUF + 8, 4, 0),
                (STATUS, 1, WRITE)
            ]),
            (IOERR, 1)
        );
    }

    fn buffers_outside_guest_memory_fail() {
        let r = Run::new();
        header(&r.mem, kind::IN, 0);
        let got = r.rw(&[
            (HDR, 16, 0),
            (MEM_SIZE - 256, 512, WRITE),
            (STATUS, 1, WRITE),
        ]);
        assert_eq!(got, (IOERR, 1));
        let got = r.rw(&[
            (HDR, 16, 0),
            (u64::MAX - 100, 512, WRITE),
            (STATUS, 1, WRITE),
        ]);
        assert_eq!(got, (IOERR, 1));
        // The header itself outside memory.
        let got = r.rw(&[(MEM_SIZE, 16, 0), (STATUS, 1, WRITE)]);
        assert_eq!(got, (IOERR, 1));
        // A write whose data is outside memory leaves the disk alone.
        header(&r.mem, kind::OUT, 0);
        let got = r.rw(&[(HDR, 16, 0), (MEM_SIZE - 256, 512, 0), (STATUS, 1, WRITE)]);
        assert_eq!(got, (IOERR, 1));
        assert_eq!(r.disk.read(0, 1)[0], pattern(0));
    }

    fn status_outside_memory_or_missing_is_survived() {
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        // Status byte past the end of RAM: nothing is written, len 0.
        assert_eq!(r.rw(&[(HDR, 16, 0), (MEM_SIZE, 1, WRITE)]).1, 0);
        // No writable descriptor at all.
        header(&r.mem, kind::OUT, 0);
        assert_eq!(r.rw(&[(HDR, 16, 0), (BUF, 512, 0)]), (0xee, 0));
        assert_eq!(r.disk.read(0, 1)[0], pattern(0), "no status, no write");
    }

    fn looping_chain_fails() {
        let r = Run::new();
        header(&r.mem, kind::OUT, 0);
        r.mem.write_slice(&[0xab; 512], GuestAddress(BUF)).unwrap();
        // 0 -> 1 -> 2 -> 1 -> 2 ...
        let got = raw_chain(
            &r,
            &[
                (HDR, 16, NEXT, 1),
                (BUF, 512, NEXT, 2),
                (STATUS, 1, WRITE | NEXT, 1),
            ],
        );
        assert_eq!(got, (IOERR, 1));
        assert_eq!(r.disk.read(0, 1)[0], pattern(0));
    }

    fn chain_pointing_past_the_table_fails() {
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        // Dangling after the header: no status byte to report through.
        assert_eq!(raw_chain(&r, &[(HDR, 16, NEXT, 200)]), (0xee, 0));
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        let got = raw_chain(&r, &[(HDR, 16, NEXT, 1), (STATUS, 1, WRITE | NEXT, 300)]);
        assert_eq!(got, (IOERR, 1));
    }

    fn chain_longer_than_4_gib_fails() {
        let r = Run::new();
        header(&r.mem, kind::IN, 0);
        let got = raw_chain(
            &r,
            &[
                (HDR, 16, NEXT, 1),
                (BUF, u32::MAX, WRITE | NEXT, 2),
                (BUF, u32::MAX, WRITE | NEXT, 3),
                (STATUS, 1, WRITE, 0),
            ],
        );
        // The walk stops inside the chain; the last byte of the (outside-RAM)
        // buffer cannot take a status, and nothing is read.
        assert_eq!(got.1, 0);
    }

    fn bad_indirect_table_fails() {
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        let indirect = virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT as u16;
        // An indirect table whose length is not a whole number of descriptors.
        let got = raw_chain(&r, &[(HDR, 16, NEXT, 1), (BUF, 17, indirect, 0)]);
        assert_eq!(got.1, 0, "no status descriptor was reached");
        // An indirect table full of a loop.
        let r = Run::new();
        header(&r.mem, kind::FLUSH, 0);
        let table = [desc(HDR, 16, NEXT, 1), desc(STATUS, 1, WRITE | NEXT, 0)];
        for (i, d) in table.iter().enumerate() {
            r.mem
                .write_obj(*d, GuestAddress(BUF + 16 * i as u64))
                .unwrap();
        }
        let got = raw_chain(&r, &[(BUF, 32, indirect, 0)]);
        assert_eq!(got, (IOERR, 1));
    }

    fn more_descriptors_than_the_queue_fails() {
        let r = Run::new();
        // FLUSH ignores extra buffers, so only the limit can fail it.
        header(&r.mem, kind::FLUSH, 0);
        let indirect = virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT as u16;
        // An indirect table may hold 65535 entries; the device stops at 256.
        let n = 300u16;
        let table = 0x40_0000;
        r.mem
            .write_obj(desc(HDR, 16, NEXT, 1), GuestAddress(table))
            .unwrap();
        for i in 1..n {
            let flags = if i + 1 == n { WRITE } else { WRITE | NEXT };
            r.mem
                .write_obj(
                    desc(STATUS, 1, flags, i + 1),
                    GuestAddress(table + 16 * u64::from(i)),
                )
                .unwrap();
        }
        let got = raw_chain(&r, &[(table, 16 * u32::from(n), indirect, 0)]);
        assert_eq!(got, (IOERR, 1));
    }

    fn indirect_chain_works() {
        let r = Run::new();
        header(&r.mem, kind::IN, 3);
        let indirect = virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT as u16;
        let table = [
            desc(HDR, 16, NEXT, 1),
            desc(BUF, 512, WRITE | NEXT, 2),
            desc(STATUS, 1, WRITE, 0),
        ];
        for (i, d) in table.iter().enumerate() {
            r.mem
                .write_obj(*d, GuestAddress(0x40_0000 + 16 * i as u64))
                .unwrap();
        }
        assert_eq!(raw_chain(&r, &[(0x40_0000, 48, indirect, 0)]), (OK, 513));
        let mut a = vec![0u8; 512];
        r.mem.read_slice(&mut a, GuestAddress(BUF)).unwrap();
        assert_eq!(a, r.disk.read(3 * 512, 512));
    }
}

/// A disk whose every operation fails, as a dying device would.
struct FailingDisk;

impl DiskBackend for FailingDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(SECTORS * 512)
    }
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
    fn flush(&self) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
    fn discard(&self, _: u64, _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
    fn write_zeroes(&self, _: u64, _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
}

#[test]
fn io_errors_become_ioerr() {
    let mem = memory();
    for ((k, dir), aio) in [(kind::IN, WRITE), (kind::OUT, 0), (kind::FLUSH, 0)]
        .into_iter()
        .flat_map(|k| [(k, AioMode::Sync), (k, AioMode::Threads)])
    {
        let mock = MockSplitQueue::new(&mem, 16);
        mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        let mut blk = if aio == AioMode::Sync {
            Block::new(Box::new(FailingDisk), BlockOptions::default()).unwrap()
        } else {
            let disk = super::Disk::new(Arc::new(FailingDisk), aio).unwrap();
            Block::with_disk(disk, BlockOptions::default()).unwrap()
        };
        activate(&mut blk, &mem, &[&mock], 0);
        header(&mem, k, 0);
        let descs: &[(u64, u32, u16)] = if k == kind::FLUSH {
            &[(HDR, 16, 0), (STATUS, 1, WRITE)]
        } else {
            &[(HDR, 16, 0), (BUF, 512, dir), (STATUS, 1, WRITE)]
        };
        add_chain(&mock, 0, descs);
        blk.process_queue(0);
        settle(&mut blk);
        assert_eq!(
            (status(&mem), used(&mock, 0).1),
            (IOERR, 1),
            "type {k} {aio:?}"
        );
    }
}

#[test]
fn many_requests_one_interrupt_per_pass() {
    let r = Run::new();
    let mock = MockSplitQueue::new(&r.mem, 16);
    let mut blk = r.disk.block(BlockOptions::default());
    let irq = activate(&mut blk, &r.mem, &[&mock], 0);
    header(&r.mem, kind::FLUSH, 0);
    for i in 0..4u16 {
        add_chain(&mock, i * 2, &[(HDR, 16, 0), (STATUS, 1, WRITE)]);
    }
    blk.process_queue(0);
    assert_eq!(used_idx(&mock), 4);
    assert_eq!(irq.used.lock().unwrap().len(), 1);
}

mod engines;
mod merge;
mod prop;

/// A disk that records what it is asked to do, for the write cache tests.
#[derive(Default)]
struct Recorder {
    /// (durable, bytes) per vectored write.
    writes: std::sync::Mutex<Vec<(bool, usize)>>,
    flushes: std::sync::atomic::AtomicUsize,
}

impl DiskBackend for Recorder {
    fn len(&self) -> io::Result<u64> {
        Ok(SECTORS * 512)
    }
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn discard(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_vectored_at(
        &self,
        bufs: &[rvirt_block::IoBuf],
        _: u64,
        durable: bool,
    ) -> io::Result<()> {
        let n = rvirt_block::total_len(bufs) as usize;
        self.writes.lock().unwrap().push((durable, n));
        Ok(())
    }
}

fn wce(blk: &Block) -> u8 {
    let mut b = [0u8];
    blk.read_config(CONFIG_WCE as u64, &mut b);
    b[0]
}

/// QEMU's write cache model: FLUSH and CONFIG_WCE offered, `wce` in the
/// config space is the disk's cache, the driver may change it, a driver
/// that does not negotiate CONFIG_WCE gets a cache exactly when it
/// negotiated FLUSH, and reset restores what the disk was opened with.
#[test]
fn the_write_cache_is_visible_configurable_and_reset() {
    use virtio_bindings::virtio_blk::VIRTIO_BLK_F_CONFIG_WCE;
    let flush = 1u64 << VIRTIO_BLK_F_FLUSH;
    let config_wce = 1u64 << VIRTIO_BLK_F_CONFIG_WCE;
    let mem = memory();
    for opened_with in [true, false] {
        let mut disk = super::Disk::new(Arc::new(Recorder::default()), AioMode::Sync).unwrap();
        disk.set_write_cache(opened_with);
        let mut blk = Block::with_disk(disk, BlockOptions::default()).unwrap();
        let f = blk.device_features();
        assert_ne!(f & flush, 0);
        assert_ne!(f & config_wce, 0);
        assert_eq!(wce(&blk), u8::from(opened_with));
        assert_eq!(blk.write_cache(), opened_with);

        // A driver with CONFIG_WCE keeps the cache as it is, and sets it.
        let mock = MockSplitQueue::new(&mem, 16);
        activate(&mut blk, &mem, &[&mock], flush | config_wce);
        assert_eq!(wce(&blk), u8::from(opened_with));
        blk.write_config(CONFIG_WCE as u64, &[u8::from(!opened_with)]);
        assert_eq!(
            (wce(&blk), blk.write_cache()),
            (u8::from(!opened_with), !opened_with)
        );
        // A wider write that covers the byte, and one that misses it.
        blk.write_config(CONFIG_WCE as u64 - 2, &[0xff, 0xff, 1, 0xff]);
        assert!(blk.write_cache());
        blk.write_config(0, &[0; 8]);
        assert!(blk.write_cache());
        blk.reset();
        assert_eq!(
            blk.write_cache(),
            opened_with,
            "reset restores the disk's cache"
        );

        // Without CONFIG_WCE: a cache exactly when the driver can flush it.
        for (acked, cache) in [(flush, true), (0, false)] {
            let mock = MockSplitQueue::new(&mem, 16);
            activate(&mut blk, &mem, &[&mock], acked);
            assert_eq!((blk.write_cache(), wce(&blk)), (cache, u8::from(cache)));
            blk.reset();
        }
    }
}

/// Without a write cache every write is durable when it completes (the
/// disk is asked for a durable write); with one, only flushes make data
/// durable.
#[test]
fn writes_are_durable_exactly_when_the_cache_is_off() {
    use virtio_bindings::virtio_blk::VIRTIO_BLK_F_CONFIG_WCE;
    let acked = 1u64 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_CONFIG_WCE;
    for aio in [AioMode::Sync, AioMode::Threads] {
        for cache in [true, false] {
            let mem = memory();
            let rec = Arc::new(Recorder::default());
            let mut disk = super::Disk::new(rec.clone(), aio).unwrap();
            disk.set_write_cache(cache);
            let mut blk = Block::with_disk(disk, BlockOptions::default()).unwrap();
            let mock = MockSplitQueue::new(&mem, 16);
            activate(&mut blk, &mem, &[&mock], acked);
            header(&mem, kind::OUT, 2);
            add_chain(
                &mock,
                0,
                &[(HDR, 16, 0), (BUF, 1024, 0), (STATUS, 1, WRITE)],
            );
            blk.process_queue(0);
            settle(&mut blk);
            assert_eq!(status(&mem), OK);
            assert_eq!(
                *rec.writes.lock().unwrap(),
                [(!cache, 1024)],
                "{aio:?} cache={cache}"
            );
            assert_eq!(rec.flushes.load(Ordering::SeqCst), 0);
        }
    }
}

/// The counters QMP's query-blockstats reports: operations and bytes per
/// kind as the guest asked, failures, refused (invalid) requests, the
/// highest offset written.
#[test]
fn requests_are_counted_for_blockstats() {
    let r = Run::new();
    let mock = MockSplitQueue::new(&r.mem, 16);
    let mut blk = r.disk.block(BlockOptions::default());
    let stats = blk.stats();
    activate(&mut blk, &r.mem, &[&mock], 0);
    let mut head = 0;
    let mut run = |blk: &mut Block, t: u32, sector: u64, descs: &[(u64, u32, u16)]| {
        header(&r.mem, t, sector);
        add_chain(&mock, head, descs);
        head += descs.len() as u16;
        blk.process_queue(0);
        settle(blk);
    };
    run(
        &mut blk,
        kind::IN,
        0,
        &[(HDR, 16, 0), (BUF, 4096, WRITE), (STATUS, 1, WRITE)],
    );
    run(
        &mut blk,
        kind::OUT,
        9,
        &[(HDR, 16, 0), (BUF, 512, 0), (STATUS, 1, WRITE)],
    );
    run(
        &mut blk,
        kind::FLUSH,
        0,
        &[(HDR, 16, 0), (STATUS, 1, WRITE)],
    );
    // Past the end: refused before the disk, counted as invalid.
    run(
        &mut blk,
        kind::IN,
        SECTORS,
        &[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)],
    );
    let s = stats.snapshot();
    assert_eq!((s.rd_operations, s.rd_bytes), (1, 4096));
    assert_eq!((s.wr_operations, s.wr_bytes), (1, 512));
    assert_eq!(s.flush_operations, 1);
    assert_eq!(s.invalid_rd_operations, 1);
    assert_eq!(s.wr_highest_offset, 10 * 512);
    assert!(s.idle_time_ns.is_some());
}
