//! The engines and `Disk::open` through the device: every cache and aio mode on a
//! real file, O_DIRECT with aligned and unaligned guest buffers, I/O errors,
//! the in-flight bound, and reset/drop waiting for in-flight I/O.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

use rvirt_block::{in_memory, Alignment, OpenError, OpenOptions, BOUNCE_MAX};

use super::*;
use crate::chain::Segment;

const SIZE: u64 = 8 << 20;
const BUF2: u64 = 0x80_0000;

/// QEMU's five cache modes as the block layer takes them: (name, O_DIRECT,
/// a volatile write cache, flushes that do nothing).
const CACHES: [(&str, bool, bool, bool); 5] = [
    ("writeback", false, true, false),
    ("none", true, true, false),
    ("writethrough", false, false, false),
    ("directsync", true, false, false),
    ("unsafe", false, true, true),
];
const ENGINES: [AioMode; 3] = [AioMode::Sync, AioMode::Threads, AioMode::IoUring];

fn cache_opts(direct: bool, write_cache: bool, no_flush: bool, aio: AioMode) -> OpenOptions {
    OpenOptions {
        direct,
        write_cache,
        no_flush,
        aio,
        ..Default::default()
    }
}

/// Where `Dev` puts the used ring: the mock's own overlaps the avail ring
/// past entry 7 for a 16-entry queue, and these tests fill all 16.
const USED: u64 = 0x8000;

/// A device on a 16-entry queue (descriptors and avail ring written with
/// the mock's helpers, the used ring at [`USED`]).
struct Dev {
    mem: Memory,
    mock: MockSplitQueue<'static, Memory>,
    blk: Block,
    irq: Arc<RecordingInterrupt>,
}

/// Guest memory for a `Dev`, leaked so the mock can borrow it for 'static
/// (a few tests, 16 MiB each, the process ends soon after).
fn leaked_memory() -> &'static Memory {
    Box::leak(Box::new(memory()))
}

impl Dev {
    fn new(blk: Block) -> Self {
        Dev::with_event_idx(blk, false)
    }

    fn with_event_idx(mut blk: Block, event_idx: bool) -> Self {
        let mem = leaked_memory();
        let mock = MockSplitQueue::new(mem, 16);
        let mut q = Queue::new(16).unwrap();
        q.set_size(16);
        q.set_desc_table_address(Some(mock.desc_table_addr().0 as u32), Some(0));
        q.set_avail_ring_address(Some(mock.avail_addr().0 as u32), Some(0));
        q.set_used_ring_address(Some(USED as u32), Some(0));
        q.set_event_idx(event_idx);
        q.set_ready(true);
        let irq = Arc::new(RecordingInterrupt::default());
        let features = if event_idx {
            crate::features::EVENT_IDX
        } else {
            0
        };
        blk.activate(ActivateContext {
            mem: mem.clone(),
            queues: vec![q],
            interrupt: irq.clone(),
            acked_features: crate::features::VERSION_1 | features,
        })
        .unwrap();
        Dev {
            mem: mem.clone(),
            mock,
            blk,
            irq,
        }
    }

    fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(USED + 2)).unwrap()
    }

    /// Posts a chain at descriptors `first..` (the avail ring wraps, unlike
    /// the mock's own helper), without kicking.
    fn post(&self, first: u16, descs: &[(u64, u32, u16)]) {
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let flags = if last { flags & !NEXT } else { flags | NEXT };
            let n = first + i as u16;
            self.mock
                .desc_table()
                .store(n, desc(addr, len, flags, n + 1))
                .unwrap();
        }
        self.repost(first);
    }

    /// Adds `head` to the avail ring again.
    fn repost(&self, head: u16) {
        let idx = self.mock.avail().idx().load();
        self.mock
            .avail()
            .ring()
            .ref_at(usize::from(idx) % 16)
            .unwrap()
            .store(head);
        self.mock.avail().idx().store(idx.wrapping_add(1));
    }

    /// Runs one request to completion; returns its status byte.
    fn request(&mut self, req_type: u32, sector: u64, data: &[(u64, u32)]) -> u8 {
        header(&self.mem, req_type, sector);
        self.mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        let dir = if req_type == kind::IN { WRITE } else { 0 };
        let mut descs = vec![(HDR, 16, 0)];
        descs.extend(data.iter().map(|&(a, l)| (a, l, dir)));
        descs.push((STATUS, 1, WRITE));
        let before = self.used_idx();
        self.post(0, &descs);
        self.blk.process_queue(0);
        settle(&mut self.blk);
        assert_eq!(self.used_idx(), before.wrapping_add(1));
        status(&self.mem)
    }

    fn fill(&self, addr: u64, len: usize, f: impl Fn(usize) -> u8) {
        let v: Vec<u8> = (0..len).map(f).collect();
        self.mem.write_slice(&v, GuestAddress(addr)).unwrap();
    }

    fn guest(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn image() -> Image {
    Image::new(SIZE)
}

/// `Disk::open`, or None (with a note) where the file system refuses
/// O_DIRECT, which only an old tmpfs here would.
fn open(path: &Path, opts: &OpenOptions) -> Option<Disk> {
    match Disk::open(path, opts) {
        Ok(d) => Some(d),
        Err(OpenError::NoDirectIo { .. }) => {
            eprintln!("skipped: {} refuses O_DIRECT", path.display());
            None
        }
        Err(e) => panic!("{opts:?}: {e}"),
    }
}

#[test]
fn every_cache_and_aio_mode_reads_writes_and_flushes() {
    for (cache, direct, write_cache, no_flush) in CACHES {
        for aio in ENGINES {
            let img = image();
            let opts = cache_opts(direct, write_cache, no_flush, aio);
            let Some(disk) = open(img.file.path(), &opts) else {
                continue;
            };
            let fd = disk.backend().raw_fd().unwrap();
            // SAFETY: F_GETFL takes no pointer.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            assert_eq!(flags & libc::O_DIRECT != 0, direct, "{cache}");
            let dsync = matches!(cache, "writethrough" | "directsync");
            assert_eq!(flags & libc::O_DSYNC == libc::O_DSYNC, dsync, "{cache}");
            assert_eq!(disk.backend().flushes(), cache != "unsafe");

            let mut dev = Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
            let what = format!("{cache} {aio:?}");
            // Page-aligned guest buffers: zero-copy even with O_DIRECT.
            dev.fill(BUF, 8192, |i| (i as u8).wrapping_mul(3) ^ 0x5a);
            assert_eq!(dev.request(kind::OUT, 16, &[(BUF, 8192)]), OK, "{what}");
            assert_eq!(dev.request(kind::FLUSH, 0, &[]), OK, "{what}");
            assert!(img.read(16 * 512, 8192) == dev.guest(BUF, 8192), "{what}");
            assert_eq!(
                img.read(15 * 512, 512),
                Image::new(16 * 512).read(15 * 512, 512)
            );
            assert_eq!(
                dev.request(kind::IN, 14, &[(BUF2, 4096), (BUF2 + 0x10000, 4096)]),
                OK,
                "{what}"
            );
            assert!(dev.guest(BUF2, 4096) == img.read(14 * 512, 4096), "{what}");
            assert!(
                dev.guest(BUF2 + 0x10000, 4096) == img.read(14 * 512 + 4096, 4096),
                "{what}"
            );
        }
    }
}

#[test]
fn direct_io_bounces_unaligned_guest_buffers() {
    for aio in [AioMode::Sync, AioMode::Threads, AioMode::IoUring] {
        let img = image();
        let opts = cache_opts(true, true, false, aio);
        let Some(disk) = open(img.file.path(), &opts) else {
            return;
        };
        let align = disk.backend().alignment();
        assert!(
            align.memory >= 2 && align.memory.is_power_of_two(),
            "{align:?}"
        );
        let mut dev = Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
        // The planner's view: odd addresses cannot go to the file directly,
        // page-aligned ones can.
        let odd = [Segment {
            addr: GuestAddress(BUF + 1),
            len: 4096,
        }];
        let page = [Segment {
            addr: GuestAddress(BUF),
            len: 4096,
        }];
        let fits = |segs: &[Segment]| {
            let bufs = exec::guest_bufs(&dev.mem, segs).unwrap();
            dev.blk.disk.alignment().fits(&bufs)
        };
        assert!(!fits(&odd));
        assert!(fits(&page));

        // A write from two odd buffers, read back into two other odd ones.
        let segs = [(BUF + 1, 1024), (BUF + 0x3003, 3072)];
        dev.fill(BUF + 1, 1024, |i| i as u8 ^ 0x11);
        dev.fill(BUF + 0x3003, 3072, |i| i as u8 ^ 0x22);
        assert_eq!(dev.request(kind::OUT, 3, &segs), OK, "{aio:?}");
        let mut want = dev.guest(BUF + 1, 1024);
        want.extend(dev.guest(BUF + 0x3003, 3072));
        assert!(img.read(3 * 512, 4096) == want, "{aio:?}");
        let back = [(BUF2 + 7, 512), (BUF2 + 0x1005, 3584)];
        assert_eq!(dev.request(kind::IN, 3, &back), OK, "{aio:?}");
        let mut got = dev.guest(BUF2 + 7, 512);
        got.extend(dev.guest(BUF2 + 0x1005, 3584));
        assert!(got == want, "{aio:?}");

        // Larger than io_uring's bounce limit: run inline, same result.
        let big = 2 << 20;
        assert!(big > BOUNCE_MAX);
        assert_eq!(
            dev.request(kind::IN, 1024, &[(BUF2 + 3, big as u32)]),
            OK,
            "{aio:?}"
        );
        assert!(
            dev.guest(BUF2 + 3, big) == img.read(1024 * 512, big),
            "{aio:?}"
        );
        // Clear of the header and status byte, which sit at 1 and 3 MiB.
        let from = 0xa0_0005;
        dev.fill(from, big, |i| (i / 512) as u8);
        assert_eq!(
            dev.request(kind::OUT, 2048, &[(from, big as u32)]),
            OK,
            "{aio:?}"
        );
        assert!(img.read(2048 * 512, big) == dev.guest(from, big), "{aio:?}");
    }
}

#[test]
fn io_errors_reach_the_guest_as_ioerr_on_every_engine() {
    for aio in [AioMode::Sync, AioMode::Threads, AioMode::IoUring] {
        let img = image();
        // Read-only at the OS level, writable for the guest: writes fail
        // with EBADF in the engine itself.
        let opts = OpenOptions {
            read_only: true,
            aio,
            ..Default::default()
        };
        let disk = Disk::open(img.file.path(), &opts).unwrap();
        let mut dev = Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
        dev.fill(BUF, 4096, |_| 0xab);
        assert_eq!(dev.request(kind::OUT, 0, &[(BUF, 4096)]), IOERR, "{aio:?}");
        assert_eq!(img.read(0, 1)[0], pattern(0));
        assert_eq!(dev.request(kind::IN, 1, &[(BUF, 512)]), OK, "{aio:?}");

        // The image shrinks under the device: reads past the new end fail,
        // one straddling it too (a short read, then end of file).
        img.file.as_file().set_len(8 * 512).unwrap();
        assert_eq!(dev.request(kind::IN, 32, &[(BUF, 512)]), IOERR, "{aio:?}");
        assert_eq!(dev.request(kind::IN, 7, &[(BUF, 1024)]), IOERR, "{aio:?}");
        assert_eq!(dev.request(kind::IN, 6, &[(BUF, 1024)]), OK, "{aio:?}");
        assert!(!dev.irq.needs_reset.load(Ordering::SeqCst));
    }
}

/// A "disk" whose reads block until bytes arrive on a pipe, so a test
/// decides when in-flight requests finish. io_uring reads the pipe itself.
struct PipeDisk {
    rx: File,
}

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the live array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

impl DiskBackend for PipeDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(SECTORS * 512)
    }
    fn read_at(&self, buf: &mut [u8], _: u64) -> io::Result<()> {
        (&self.rx).read_exact(buf)
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
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.as_raw_fd())
    }
}

fn pipe_dev(aio: AioMode) -> (Dev, File) {
    let (rx, tx) = pipe();
    let disk = Disk::new(Arc::new(PipeDisk { rx }), aio).unwrap();
    (
        Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap()),
        tx,
    )
}

/// Feeds the pipe after a delay; returns when it did.
fn feed_later(mut tx: File, bytes: usize) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        tx.write_all(&vec![0x5a; bytes]).unwrap();
        at
    })
}

#[test]
fn reset_waits_for_in_flight_requests_and_drops_their_results() {
    for aio in [AioMode::Threads, AioMode::IoUring] {
        let (mut dev, tx) = pipe_dev(aio);
        header(&dev.mem, kind::IN, 0);
        dev.mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        dev.post(0, &[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)]);
        dev.blk.process_queue(0);
        assert_eq!(dev.blk.in_flight(), 1, "{aio:?}");
        assert_eq!(dev.used_idx(), 0);

        let feeder = feed_later(tx, 512);
        dev.blk.reset();
        let reset_returned = Instant::now();
        let fed = feeder.join().unwrap();
        assert!(
            reset_returned >= fed,
            "{aio:?}: reset returned before the read finished"
        );
        // The read itself landed before reset returned (nothing can land
        // later), but the reset device neither wrote a status nor used it.
        assert_eq!(dev.guest(BUF, 512), vec![0x5a; 512], "{aio:?}");
        assert_eq!(status(&dev.mem), 0xee, "{aio:?}");
        assert_eq!(dev.blk.in_flight(), 0);
        dev.blk.process_host_fd();
        assert_eq!(dev.used_idx(), 0, "{aio:?}");
        assert!(dev.irq.used.lock().unwrap().is_empty());
    }
}

#[test]
fn dropping_the_device_waits_for_in_flight_requests() {
    for aio in [AioMode::Threads, AioMode::IoUring] {
        let (dev, tx) = pipe_dev(aio);
        header(&dev.mem, kind::IN, 0);
        dev.post(0, &[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)]);
        let Dev { mem, mut blk, .. } = dev;
        blk.process_queue(0);
        assert_eq!(blk.in_flight(), 1);
        let feeder = feed_later(tx, 512);
        drop(blk);
        let dropped = Instant::now();
        assert!(dropped >= feeder.join().unwrap(), "{aio:?}");
        let mut got = vec![0u8; 512];
        mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
        assert_eq!(got, vec![0x5a; 512]);
    }
}

#[test]
fn short_transfers_are_finished() {
    for aio in [AioMode::Threads, AioMode::IoUring] {
        let (mut dev, mut tx) = pipe_dev(aio);
        header(&dev.mem, kind::IN, 0);
        dev.mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
        dev.post(0, &[(HDR, 16, 0), (BUF, 1024, WRITE), (STATUS, 1, WRITE)]);
        // Half the data now: the read returns short and must go on for the
        // rest instead of completing or failing.
        tx.write_all(&[0x11; 512]).unwrap();
        dev.blk.process_queue(0);
        std::thread::sleep(Duration::from_millis(100));
        if let Some(fd) = dev.blk.host_fd() {
            if wait_readable(fd, Duration::from_millis(100)) {
                dev.blk.process_host_fd();
            }
        }
        assert_eq!(dev.used_idx(), 0, "{aio:?}: completed with half the data");
        tx.write_all(&[0x22; 512]).unwrap();
        settle(&mut dev.blk);
        assert_eq!((dev.used_idx(), status(&dev.mem)), (1, OK), "{aio:?}");
        let mut want = vec![0x11; 512];
        want.extend([0x22; 512]);
        assert!(dev.guest(BUF, 1024) == want, "{aio:?}");
    }
}

#[test]
fn in_flight_requests_are_bounded_by_the_queue_size() {
    for aio in [AioMode::Threads, AioMode::IoUring] {
        let (mut dev, tx) = pipe_dev(aio);
        header(&dev.mem, kind::IN, 0);
        // A hostile driver posts the same head again and again while it is
        // still in flight.
        dev.post(0, &[(HDR, 16, 0), (BUF, 512, WRITE), (STATUS, 1, WRITE)]);
        for _ in 1..16 {
            dev.repost(0);
        }
        dev.blk.process_queue(0);
        assert_eq!(dev.blk.in_flight(), 16, "{aio:?}");
        for _ in 0..4 {
            dev.repost(0);
        }
        dev.blk.process_queue(0);
        assert_eq!(dev.blk.in_flight(), 16, "{aio:?}: more than the queue size");
        assert_eq!(dev.used_idx(), 0);
        // Completions free slots; the 4 waiting are started without a kick.
        feed_later(tx, 20 * 512).join().unwrap();
        settle(&mut dev.blk);
        assert_eq!(dev.used_idx(), 20, "{aio:?}");
        assert_eq!(status(&dev.mem), OK);
        assert!(!dev.irq.needs_reset.load(Ordering::SeqCst));
    }
}

#[test]
fn completions_interrupt_only_when_event_idx_asks() {
    for aio in [AioMode::Sync, AioMode::Threads, AioMode::IoUring] {
        for suppress in [false, true] {
            let img = image();
            let opts = OpenOptions {
                aio,
                ..Default::default()
            };
            let disk = Disk::open(img.file.path(), &opts).unwrap();
            let blk = Block::with_disk(disk, BlockOptions::default()).unwrap();
            let mut dev = Dev::with_event_idx(blk, true);
            // used_event (after the 16 avail entries): interrupt once the
            // used index passes it. 5: not for the first completion.
            let used_event = dev.mock.avail_addr().0 + 4 + 2 * 16;
            let value: u16 = if suppress { 5 } else { 0 };
            dev.mem.write_obj(value, GuestAddress(used_event)).unwrap();
            assert_eq!(dev.request(kind::FLUSH, 0, &[]), OK);
            let irqs = dev.irq.used.lock().unwrap().len();
            assert_eq!(irqs, usize::from(!suppress), "{aio:?} suppress={suppress}");
        }
    }
}

#[test]
fn discard_reaches_the_file_only_with_discard_unmap() {
    for discard in [false, true] {
        for aio in [AioMode::Sync, AioMode::Threads, AioMode::IoUring] {
            let img = image();
            let opts = OpenOptions {
                aio,
                discard,
                ..Default::default()
            };
            let disk = Disk::open(img.file.path(), &opts).unwrap();
            let mut dev = Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
            let len = ranges(&dev.mem, &[(16, 16, 0)]);
            header(&dev.mem, kind::DISCARD, 0);
            dev.post(0, &[(HDR, 16, 0), (BUF, len, 0), (STATUS, 1, WRITE)]);
            dev.blk.process_queue(0);
            settle(&mut dev.blk);
            assert_eq!(status(&dev.mem), OK);
            let zeroed = img.read(16 * 512, 16 * 512).iter().all(|&b| b == 0);
            // ext4 and tmpfs punch holes.
            assert_eq!(zeroed, discard, "discard={discard} {aio:?}");
        }
    }
}

#[test]
fn open_errors_name_the_path_and_what_failed() {
    let missing = Path::new("/nonexistent/rvirt-disk.img");
    let err = Disk::open(missing, &OpenOptions::default()).err().unwrap();
    // The message names the path; its source says what failed (the chain
    // is printed once, at the top).
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/rvirt-disk.img"), "{msg}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("No such file"), "{cause}");
    // aio=native without O_DIRECT, and QEMU's spellings of cache= and aio=,
    // are the command line parser's (rvirt-vmm-config's tests).
}

/// O_DIRECT on a file system without it (ramfs) fails the way QEMU's does.
/// Needs root to mount a ramfs; says `skipped` otherwise.
#[test]
fn direct_io_on_a_file_system_without_it_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated strings that outlive the call; no data.
    let ret = unsafe {
        libc::mount(
            c"rvirt-test".as_ptr(),
            target.as_ptr(),
            c"ramfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        eprintln!(
            "skipped: cannot mount a ramfs: {}",
            io::Error::last_os_error()
        );
        return;
    }
    struct Unmount(std::ffi::CString);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _unmount = Unmount(target);
    let path = dir.path().join("disk.img");
    File::create(&path).unwrap().set_len(1 << 20).unwrap();
    let opts = OpenOptions {
        direct: true,
        ..Default::default()
    };
    let err = Disk::open(&path, &opts).err().unwrap();
    assert!(matches!(err, OpenError::NoDirectIo { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "Could not open '{}': filesystem does not support O_DIRECT",
            path.display()
        )
    );
    // Without O_DIRECT the same file opens.
    Disk::open(&path, &OpenOptions::default()).unwrap();
}

/// A backend that says O_DIRECT needs 4096-byte offsets.
struct FourK;

impl DiskBackend for FourK {
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
        Ok(())
    }
    fn discard(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn alignment(&self) -> Alignment {
        Alignment {
            memory: 4096,
            offset: 4096,
        }
    }
}

#[test]
fn a_4k_direct_disk_advertises_its_block_size() {
    use virtio_bindings::virtio_blk::VIRTIO_BLK_F_BLK_SIZE;
    let blk = Block::new(Box::new(FourK), BlockOptions::default()).unwrap();
    assert_ne!(blk.device_features() & 1 << VIRTIO_BLK_F_BLK_SIZE, 0);
    let mut size = [0u8; 4];
    blk.read_config(20, &mut size);
    assert_eq!(u32::from_le_bytes(size), 4096);

    let blk = Block::new(Box::new(FailingDisk), BlockOptions::default()).unwrap();
    assert_eq!(blk.device_features() & 1 << VIRTIO_BLK_F_BLK_SIZE, 0);
    blk.read_config(20, &mut size);
    assert_eq!(size, [0; 4]);
}

#[test]
fn the_sync_engine_has_no_host_fd_and_async_ones_do() {
    let img = image();
    // A disk in memory (tmpfs: /tmp on some machines) is served inline
    // even with aio=threads.
    let in_memory = in_memory(&File::open(img.file.path()).unwrap());
    for (aio, has_fd) in [
        (AioMode::Sync, false),
        (AioMode::Threads, !in_memory),
        (AioMode::IoUring, true),
    ] {
        let opts = OpenOptions {
            aio,
            ..Default::default()
        };
        let disk = Disk::open(img.file.path(), &opts).unwrap();
        let blk = Block::with_disk(disk, BlockOptions::default()).unwrap();
        assert_eq!(blk.host_fd().is_some(), has_fd, "{aio:?}");
        if let Some(fd) = blk.host_fd() {
            assert!(!wait_readable(fd, Duration::ZERO), "idle engines are quiet");
        }
    }
    // io_uring needs a descriptor to submit to.
    assert!(Disk::new(Arc::new(FailingDisk), AioMode::IoUring).is_err());
}

/// aio=threads on tmpfs: served inline (no worker pool, no host fd), since
/// a memory copy never waits for a device; io_uring is kept as asked.
#[test]
fn threads_on_tmpfs_are_served_inline() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let file = tempfile::NamedTempFile::new_in(shm).unwrap();
    file.as_file().set_len(SIZE).unwrap();
    assert!(in_memory(file.as_file()), "/dev/shm is tmpfs");
    for (aio, has_fd) in [(AioMode::Threads, false), (AioMode::IoUring, true)] {
        let opts = OpenOptions {
            aio,
            ..Default::default()
        };
        let disk = Disk::open(file.path(), &opts).unwrap();
        let mut dev = Dev::new(Block::with_disk(disk, BlockOptions::default()).unwrap());
        assert_eq!(dev.blk.host_fd().is_some(), has_fd, "{aio:?}");
        dev.fill(BUF, 4096, |i| i as u8);
        assert_eq!(dev.request(kind::OUT, 8, &[(BUF, 4096)]), OK, "{aio:?}");
        assert_eq!(
            dev.request(kind::IN, 8, &[(BUF + 0x2000, 4096)]),
            OK,
            "{aio:?}"
        );
    }
}
