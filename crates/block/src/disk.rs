//! A disk as a device uses it: an image (a format over its storage), the
//! engine that runs its requests, its write cache setting and statistics.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::aligned::AlignedBuf;
use crate::backend::{Alignment, DiskBackend};
use crate::engine::{self, Engine, Finished, Job};
use crate::format::{Format, Raw};
use crate::open::AioMode;
use crate::request::{Done, IoKind, Op, Request};
use crate::stats::Stats;

/// A disk image with the engine that serves it. `T` is the caller's
/// request tag, returned with each request's [`Done`].
///
/// Dropping a disk (like [`Disk::quiesce`]) waits for every request in
/// flight, so the kernel writes into no buffer after that.
pub struct Disk<T> {
    // First, so dropping the disk waits for in-flight I/O before anything
    // else goes.
    engine: Engine<T>,
    format: Arc<dyn Format>,
    /// Bounce buffer for requests run inline.
    bounce: AlignedBuf,
    stats: Arc<Stats>,
    /// Whether the disk has a volatile write cache; without one, writes are
    /// durable when they complete.
    write_cache: bool,
    /// Requests issued as part of a merged run, ever.
    merged: usize,
    /// The storage's flushes do something (not `no_flush`).
    flushes: bool,
    /// The storage makes every write durable already (O_DSYNC).
    writes_through: bool,
    /// Completions reaped from the engine, not yet counted.
    finished: Vec<Finished<T>>,
    /// Where writes are logged while a commit job copies this disk.
    write_log: Option<Arc<crate::commit::WriteLog>>,
}

/// The queue bound a disk gets from [`Disk::new`] and by default from
/// [`Disk::open`]; see [`Disk::with_format`].
pub const DEFAULT_BOUND: u16 = 256;

impl<T: Send + 'static> Disk<T> {
    /// A raw image on `storage`, with the engine `aio` asks for (io_uring
    /// needs storage with a [`DiskBackend::raw_fd`]) and a write cache.
    pub fn new(storage: Arc<dyn DiskBackend>, aio: AioMode) -> io::Result<Self> {
        Self::with_format(Arc::new(Raw::new(storage)), aio, DEFAULT_BOUND)
    }

    /// Any image format, with at most `bound` requests in flight at once
    /// (the caller's queue size: io_uring sizes its rings by it; the caller
    /// keeps to it).
    pub fn with_format(format: Arc<dyn Format>, aio: AioMode, bound: u16) -> io::Result<Self> {
        let engine = Engine::new(&format, aio, bound)?;
        let storage = format.storage();
        Ok(Disk {
            engine,
            flushes: storage.flushes(),
            writes_through: storage.writes_through(),
            bounce: AlignedBuf::new(format.storage().alignment().memory),
            format,
            stats: Arc::new(Stats::default()),
            write_cache: true,
            merged: 0,
            finished: Vec::new(),
            write_log: None,
        })
    }

    /// Size of the virtual disk in bytes.
    pub fn len(&self) -> io::Result<u64> {
        self.format.len()
    }

    /// Whether the virtual disk has no bytes.
    pub fn is_empty(&self) -> io::Result<bool> {
        self.format.is_empty()
    }

    /// The image and the images below it, top first (empty for a raw
    /// image, which is just its file).
    pub fn chain(&self) -> Vec<crate::format::Layer> {
        self.format.chain()
    }

    /// The storage requests end up in.
    pub fn backend(&self) -> &Arc<dyn DiskBackend> {
        self.format.storage()
    }

    /// What O_DIRECT asks of buffers and offsets.
    pub fn alignment(&self) -> Alignment {
        self.backend().alignment()
    }

    /// The counters, for a monitor to read.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Whether the disk has a volatile write cache.
    pub fn write_cache(&self) -> bool {
        self.write_cache
    }

    /// Turns the volatile write cache on or off (a guest writing its
    /// virtio-blk `wce`, as QEMU allows). Off, each write is durable when it
    /// completes: a FUA write (RWF_DSYNC) unless the image was opened with
    /// O_DSYNC already, and nothing at all when flushes are off
    /// (`no_flush`). Requests already submitted keep what they had.
    pub fn set_write_cache(&mut self, on: bool) {
        self.write_cache = on;
    }

    /// Starts a request. Returns its result at once when it ran inline
    /// (the sync engine, no-op flushes, what an engine leaves to the
    /// caller's thread); otherwise [`Disk::reap`] returns it later.
    pub fn submit(&mut self, req: Request<T>) -> Option<Done<T>> {
        if let Some(log) = &self.write_log {
            match &req.op {
                Op::Write { offset, bufs } => log.mark(*offset, crate::buf::total_len(bufs)),
                Op::Discard(r) | Op::WriteZeroes(r) => {
                    r.iter().for_each(|r| log.mark(r.offset, r.len))
                }
                Op::Read { .. } | Op::Flush => {}
            }
        }
        let durable = !self.write_cache && self.flushes && !self.writes_through;
        let job = Job {
            tag: req.tag,
            op: req.op,
            durable,
        };
        if matches!(job.op, Op::Flush) && !self.flushes {
            // no_flush: nothing to wait for, nothing to hand a thread.
            return Some(self.account(job.finish(Ok(()))));
        }
        match self.engine.submit(job) {
            Ok(()) => None,
            Err(job) => {
                let finished = engine::run(&*self.format, &mut self.bounce, job);
                Some(self.account(finished))
            }
        }
    }

    /// Hands what [`Disk::submit`] queued to the kernel or the workers
    /// (once per batch of submissions).
    pub fn commit(&mut self) {
        let m = self.engine.commit();
        self.merged += (m.reads + m.writes) as usize;
        // QEMU counts a run of n merged requests as n - 1.
        self.stats.merged(IoKind::Read, m.reads - m.read_runs);
        self.stats.merged(IoKind::Write, m.writes - m.write_runs);
    }

    /// The descriptor that becomes readable when requests finish (an
    /// eventfd), for the caller's event loop; None for the sync engine.
    pub fn host_fd(&self) -> Option<RawFd> {
        self.engine.host_fd()
    }

    /// Moves finished requests to `out`.
    pub fn reap(&mut self, out: &mut Vec<Done<T>>) {
        self.engine.reap(&mut self.finished);
        self.drain_finished(out);
    }

    /// Like [`Disk::reap`], but only when results are already there;
    /// cheap to call after every pass.
    pub fn reap_ready(&mut self, out: &mut Vec<Done<T>>) {
        self.engine.reap_ready(&mut self.finished);
        self.drain_finished(out);
    }

    fn drain_finished(&mut self, out: &mut Vec<Done<T>>) {
        let mut finished = std::mem::take(&mut self.finished);
        out.extend(finished.drain(..).map(|f| self.account(f)));
        self.finished = finished;
    }

    fn account(&self, f: Finished<T>) -> Done<T> {
        self.stats.done(f.kind, f.bytes, f.end, f.result.is_ok());
        Done {
            tag: f.tag,
            result: f.result,
        }
    }

    /// Requests submitted and not reaped yet.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// Requests issued as part of a merged run, ever.
    pub fn merged(&self) -> usize {
        self.merged
    }

    /// Logs every write, discard and write-zeroes submitted from now on
    /// into `log` (or stops logging): a commit job copies those ranges
    /// again before the device switches images.
    pub fn log_writes(&mut self, log: Option<Arc<crate::commit::WriteLog>>) {
        self.write_log = log;
    }

    /// Waits (up to `limit`) until no request is in flight, their results
    /// moved to `out`, then makes the image's metadata and data durable:
    /// the point at which a caller may switch its device to another image
    /// (a snapshot's overlay) with nothing of this one left in flight or
    /// cached. On a timeout the requests still in flight stay so.
    pub fn settle(&mut self, out: &mut Vec<Done<T>>, limit: std::time::Duration) -> io::Result<()> {
        let deadline = std::time::Instant::now() + limit;
        while self.in_flight() > 0 {
            self.reap_ready(out);
            if self.in_flight() == 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "requests still in flight",
                ));
            }
            // Short naps: an engine's completions come within microseconds
            // to milliseconds, and this runs only when images are switched.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.format.flush()?;
        self.format.storage().flush()
    }

    /// Waits until no request is in flight and forgets their results: the
    /// caller is being reset and takes its buffers back.
    pub fn quiesce(&mut self) {
        self.engine.quiesce();
        self.finished.clear();
    }
}
