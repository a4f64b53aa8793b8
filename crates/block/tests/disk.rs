//! The block layer on its own, with host buffers: every engine reads and
//! writes through a format's mapping (raw, and a format that scatters the
//! virtual disk over its file and has a hole), merges adjacent requests,
//! bounces buffers O_DIRECT cannot take, and makes writes durable exactly
//! when the disk has no write cache (measured with a loop device's flush
//! count, as root).

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_block::{
    AioMode, Disk, DiskBackend, Done, Format, IoBuf, Mapping, Op, OpenOptions, Range, Request,
};

const ENGINES: [AioMode; 3] = [AioMode::Sync, AioMode::Threads, AioMode::IoUring];
const SIZE: u64 = 4 << 20;

fn pattern(offset: u64) -> u8 {
    (offset / 512) as u8 ^ (offset as u8).wrapping_mul(7)
}

/// A file under the target directory (not tmpfs, so aio=threads keeps its
/// workers) filled with `pattern`.
fn image() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data: Vec<u8> = (0..SIZE).map(pattern).collect();
    f.as_file().write_all_at(&data, 0).unwrap();
    f
}

/// Host memory for requests: buffers carved out of one allocation that
/// outlives every request of a test.
struct Mem(Vec<u8>);

impl Mem {
    fn new(len: usize) -> Self {
        Mem(vec![0; len])
    }

    fn buf(&mut self, at: usize, len: usize) -> IoBuf {
        assert!(at + len <= self.0.len());
        // SAFETY: inside `self.0`, which every test keeps alive (and does
        // not touch) until its requests are done.
        unsafe { IoBuf::new(self.0.as_mut_ptr().add(at), len) }
    }
}

/// The bound on every wait here.
const LIMIT: Duration = Duration::from_secs(20);

/// Submits `reqs` in one batch and waits (within [`LIMIT`]) for all of
/// them; results by tag.
fn run(disk: &mut Disk<usize>, reqs: Vec<Op>) -> Vec<io::Result<()>> {
    let n = reqs.len();
    let mut out: Vec<Option<io::Result<()>>> = (0..n).map(|_| None).collect();
    let mut done: Vec<Done<usize>> = Vec::new();
    for (tag, op) in reqs.into_iter().enumerate() {
        if let Some(d) = disk.submit(Request { tag, op }) {
            done.push(d);
        }
    }
    disk.commit();
    let deadline = Instant::now() + LIMIT;
    loop {
        for d in done.drain(..) {
            out[d.tag] = Some(d.result);
        }
        if out.iter().all(Option::is_some) {
            break;
        }
        assert!(Instant::now() < deadline, "requests never completed");
        if let Some(fd) = disk.host_fd() {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, a live local.
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
        disk.reap(&mut done);
    }
    out.into_iter().map(Option::unwrap).collect()
}

#[test]
fn every_engine_reads_writes_merges_and_flushes_a_raw_image() {
    for aio in ENGINES {
        let img = image();
        let opts = OpenOptions {
            aio,
            ..Default::default()
        };
        let mut disk: Disk<usize> = Disk::open(img.path(), &opts).unwrap();
        let mut mem = Mem::new(64 << 10);
        // Four adjacent 4 KiB reads in one batch: one merged transfer.
        let reads = (0..4)
            .map(|i| Op::Read {
                offset: 8192 + 4096 * i as u64,
                bufs: vec![mem.buf(4096 * i, 4096)],
            })
            .collect();
        assert!(run(&mut disk, reads).iter().all(Result::is_ok), "{aio:?}");
        let want: Vec<u8> = (8192..8192 + 16384).map(pattern).collect();
        assert!(mem.0[..16384] == want[..], "{aio:?}");
        if aio != AioMode::Sync {
            assert_eq!(disk.merged(), 4, "{aio:?}");
            assert_eq!(disk.stats().snapshot().rd_merged, 3, "{aio:?}");
        }
        // A write from two buffers, a flush, and the bytes in the file.
        mem.0[32768..32768 + 1024].fill(0xab);
        let write = Op::Write {
            offset: 512,
            bufs: vec![mem.buf(32768, 512), mem.buf(33280, 512)],
        };
        let res = run(&mut disk, vec![write, Op::Flush]);
        assert!(res.iter().all(Result::is_ok), "{aio:?}");
        let mut back = [0u8; 1024];
        img.as_file().read_exact_at(&mut back, 512).unwrap();
        assert_eq!(back, [0xab; 1024], "{aio:?}");
        let s = disk.stats().snapshot();
        assert_eq!(
            (s.rd_operations, s.wr_operations, s.flush_operations),
            (4, 1, 1)
        );
        assert_eq!(s.wr_highest_offset, 1536);
    }
}

#[test]
fn direct_io_bounces_unaligned_buffers_and_zero_copies_aligned_ones() {
    for aio in ENGINES {
        let img = image();
        let opts = OpenOptions {
            direct: true,
            aio,
            ..Default::default()
        };
        let mut disk: Disk<usize> = match Disk::open(img.path(), &opts) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let align = disk.alignment();
        assert!(align.memory >= 2, "{align:?}");
        // A page-aligned allocation: offsets from it decide the alignment.
        let mut mem = Mem::new(3 << 20);
        let base = mem.0.as_ptr() as usize;
        let page = (4096 - base % 4096) % 4096;
        assert!(align.fits(&[mem.buf(page, 4096)]));
        assert!(!align.fits(&[mem.buf(page + 1, 4096)]));
        // Odd buffers, odd lengths (the stream is a whole number of
        // sectors), written then read back into other odd buffers.
        for i in 0..4096 {
            mem.0[page + 1 + i] = (i as u8) ^ 0x5a;
        }
        let w = Op::Write {
            offset: 4096,
            bufs: vec![mem.buf(page + 1, 100), mem.buf(page + 101, 3996)],
        };
        assert!(run(&mut disk, vec![w])[0].is_ok(), "{aio:?}");
        let r = Op::Read {
            offset: 4096,
            bufs: vec![mem.buf(page + 8195, 4000), mem.buf(page + 16387, 96)],
        };
        assert!(run(&mut disk, vec![r])[0].is_ok(), "{aio:?}");
        let mut got = mem.0[page + 8195..page + 8195 + 4000].to_vec();
        got.extend_from_slice(&mem.0[page + 16387..page + 16387 + 96]);
        let want = &mem.0[page + 1..page + 1 + 4096];
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        assert!(got == want, "{aio:?}: first difference at {first:?}");
        // More than io_uring bounces itself: run inline, same result.
        let big = 2 << 20;
        assert!(big > rvirt_block::BOUNCE_MAX);
        let r = Op::Read {
            offset: 0,
            bufs: vec![mem.buf(page + 3, big)],
        };
        assert!(run(&mut disk, vec![r])[0].is_ok(), "{aio:?}");
        let mut want = vec![0u8; big];
        img.as_file().read_exact_at(&mut want, 0).unwrap();
        assert!(mem.0[page + 3..page + 3 + big] == want[..], "{aio:?}");
    }
}

/// A format that lays the virtual disk's 4 KiB blocks out in reverse over
/// its file and leaves virtual block 3 a hole (reads as zeroes, takes no
/// writes): what qcow2 will do through imago, in miniature.
struct Reversed {
    storage: Arc<dyn DiskBackend>,
    blocks: u64,
}

const BLOCK: u64 = 4096;
const HOLE: u64 = 3;

impl Format for Reversed {
    fn len(&self) -> io::Result<u64> {
        Ok(self.blocks * BLOCK)
    }
    fn map(&self, offset: u64, len: u64, write: bool) -> io::Result<Mapping> {
        let block = offset / BLOCK;
        let within = offset % BLOCK;
        let len = len.min(BLOCK - within);
        if block == HOLE {
            if write {
                return Err(io::Error::other("no allocation in this test format"));
            }
            return Ok(Mapping::Zero { len });
        }
        Ok(Mapping::Host {
            offset: (self.blocks - 1 - block) * BLOCK + within,
            len,
        })
    }
    fn storage(&self) -> &Arc<dyn DiskBackend> {
        &self.storage
    }
}

#[test]
fn every_engine_goes_through_the_format_mapping() {
    for aio in ENGINES {
        let img = image();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(img.path())
            .unwrap();
        let storage: Arc<dyn DiskBackend> = Arc::new(rvirt_block::RawFile::new(file));
        let blocks = 16;
        let format = Arc::new(Reversed { storage, blocks });
        let mut disk: Disk<usize> = Disk::with_format(format, aio, 64).unwrap();
        assert_eq!(disk.len().unwrap(), blocks * BLOCK);
        let mut mem = Mem::new(64 << 10);
        mem.0.fill(0xee);
        // Virtual blocks 2..6 (a hole at 3), across three buffers; and
        // two adjacent reads that merge on the virtual disk but not on
        // the host.
        let reads = vec![
            Op::Read {
                offset: 2 * BLOCK + 100,
                bufs: vec![
                    mem.buf(0, 1000),
                    mem.buf(1000, 8000),
                    mem.buf(9000, 4 * 4096 - 100 - 9000),
                ],
            },
            Op::Read {
                offset: 8 * BLOCK,
                bufs: vec![mem.buf(32768, 4096)],
            },
            Op::Read {
                offset: 9 * BLOCK,
                bufs: vec![mem.buf(36864, 4096)],
            },
        ];
        assert!(run(&mut disk, reads).iter().all(Result::is_ok), "{aio:?}");
        let host = |v: u64| (blocks - 1 - v / BLOCK) * BLOCK + v % BLOCK;
        for (i, v) in (2 * BLOCK + 100..6 * BLOCK).enumerate() {
            let want = if v / BLOCK == HOLE {
                0
            } else {
                pattern(host(v))
            };
            assert_eq!(mem.0[i], want, "{aio:?} virtual byte {v}");
        }
        for (i, v) in (8 * BLOCK..10 * BLOCK).enumerate() {
            assert_eq!(mem.0[32768 + i], pattern(host(v)), "{aio:?}");
        }
        // A write lands where the format says; one into the hole fails
        // alone.
        mem.0[40960..40960 + 512].fill(0x77);
        let res = run(
            &mut disk,
            vec![
                Op::Write {
                    offset: BLOCK,
                    bufs: vec![mem.buf(40960, 512)],
                },
                Op::Write {
                    offset: HOLE * BLOCK,
                    bufs: vec![mem.buf(40960, 512)],
                },
                Op::WriteZeroes(vec![Range {
                    offset: HOLE * BLOCK,
                    len: 512,
                }]),
            ],
        );
        assert!(
            res[0].is_ok() && res[1].is_err() && res[2].is_err(),
            "{aio:?}"
        );
        let mut back = [0u8; 512];
        img.as_file().read_exact_at(&mut back, host(BLOCK)).unwrap();
        assert_eq!(back, [0x77; 512], "{aio:?}");
        assert_eq!(disk.stats().snapshot().failed_wr_operations, 2);
    }
}

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Option<Loop> {
        let out = rvirt_testkit::try_run(
            Command::new("losetup").args(["--find", "--show"]).arg(file),
            LIMIT,
        )
        .ok()?;
        out.status
            .success()
            .then(|| Loop(String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// Flush requests the block layer completed on the device
    /// (/sys/block/loopN/stat, field 16).
    fn flushes(&self) -> u64 {
        let name = Path::new(&self.0).file_name().unwrap().to_string_lossy();
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
        stat.split_whitespace().nth(15).unwrap().parse().unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = rvirt_testkit::try_run(Command::new("losetup").args(["-d", &self.0]), LIMIT);
    }
}

/// Durability measured by the kernel, not read off the code: a loop
/// device counts the flushes that reach it. Without a write cache every
/// write reaches the disk with a flush (O_DSYNC when opened so, RWF_DSYNC
/// when the cache is turned off later); with one, writes do not and only
/// flushes do; with `no_flush`, nothing does.
#[test]
fn durability_reaches_the_device_as_the_cache_options_say() {
    if !Path::new("/dev/loop-control").exists() {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "loop devices are required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("skipped: no loop devices here");
        return;
    }
    let backing = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    backing.as_file().set_len(SIZE).unwrap();
    let Some(dev) = Loop::attach(backing.path()) else {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "losetup failed with RVIRT_REQUIRE_REFERENCE set"
        );
        eprintln!("skipped: losetup failed (not root?)");
        return;
    };
    // (write cache at open, turned to later, no_flush, direct) and what a
    // write then a flush must cost in device flushes: (per write, per flush).
    let cases = [
        (true, None, false, false, (0, 1)),
        (true, None, false, true, (0, 1)),
        (false, None, false, false, (1, 1)),
        (false, None, false, true, (1, 1)),
        (true, Some(false), false, false, (1, 1)),
        (false, Some(true), false, false, (1, 1)),
        (true, None, true, false, (0, 0)),
    ];
    for (cache, later, no_flush, direct, (per_write, per_flush)) in cases {
        for aio in ENGINES {
            let what = format!(
                "cache={cache} later={later:?} no_flush={no_flush} direct={direct} {aio:?}"
            );
            let opts = OpenOptions {
                write_cache: cache,
                no_flush,
                direct,
                aio,
                ..Default::default()
            };
            let mut disk: Disk<usize> = Disk::open(Path::new(&dev.0), &opts).unwrap();
            if let Some(on) = later {
                disk.set_write_cache(on);
            }
            let mut mem = Mem::new(16384);
            let base = mem.0.as_ptr() as usize;
            let page = (4096 - base % 4096) % 4096;
            let before = dev.flushes();
            let w = Op::Write {
                offset: 4096,
                bufs: vec![mem.buf(page, 4096)],
            };
            assert!(run(&mut disk, vec![w])[0].is_ok(), "{what}");
            let after_write = dev.flushes();
            assert!(run(&mut disk, vec![Op::Flush])[0].is_ok(), "{what}");
            let after_flush = dev.flushes();
            // A durable O_DIRECT write may cost the device two flushes
            // (FUA emulated as a flush before and after).
            let w = after_write - before;
            assert!(
                if per_write == 0 { w == 0 } else { w >= 1 },
                "{what}: {w} device flushes for one write"
            );
            assert_eq!(after_flush - after_write, per_flush, "{what}: flush");
        }
    }
}
