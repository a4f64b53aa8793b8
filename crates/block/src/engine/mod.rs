//! Where requests run: inline (sync), on a worker pool (threads) or
//! through io_uring.
//!
//! [`crate::Disk`] hands an engine one [`Job`] per request and gets a
//! [`Finished`] back later through [`Engine::reap`], which the caller's
//! event loop triggers when [`Engine::host_fd`] (an eventfd) becomes
//! readable. The buffers a job points into are the caller's to keep valid
//! until then ([`crate::IoBuf::new`]); [`Engine::quiesce`] waits for every
//! job, so nothing is written into memory the caller takes back after it.

mod exec;
pub(crate) mod merge;
pub(crate) mod threads;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::aligned::AlignedBuf;
use crate::buf::{total_len, IoBuf};
use crate::format::{Format, Mapping};
use crate::open::AioMode;
use crate::request::{IoKind, Op};

pub use uring::BOUNCE_MAX;

/// A request on its way to the disk.
pub(crate) struct Job<T> {
    pub tag: T,
    pub op: Op,
    /// Durable when it completes (no volatile write cache).
    pub durable: bool,
}

/// A finished job and what statistics need of it.
pub(crate) struct Finished<T> {
    pub tag: T,
    pub result: io::Result<()>,
    pub kind: IoKind,
    pub bytes: u64,
    /// End of what it wrote, for `wr_highest_offset`.
    pub end: u64,
}

impl<T> Job<T> {
    pub(crate) fn finish(self, result: io::Result<()>) -> Finished<T> {
        if let Err(error) = &result {
            tracing::debug!(%error, "disk request failed");
        }
        Finished {
            kind: self.op.kind(),
            bytes: self.op.bytes(),
            end: self.op.write_end(),
            tag: self.tag,
            result,
        }
    }
}

pub(crate) enum Engine<T> {
    Sync,
    Threads(threads::Pool<T>),
    Uring(Box<uring::Uring<T>>),
}

/// Worker threads for aio=threads. QEMU's pool grows to 64; two cores here
/// and one queue make a handful enough to keep the disk busy.
pub const WORKERS: usize = 4;

impl<T: Send + 'static> Engine<T> {
    /// `bound`: the most requests in flight at once (the caller's queue
    /// size); io_uring sizes its rings by it.
    pub fn new(format: &Arc<dyn Format>, aio: AioMode, bound: u16) -> io::Result<Self> {
        Ok(match aio {
            AioMode::Sync => Engine::Sync,
            AioMode::Threads => Engine::Threads(threads::Pool::new(format.clone(), WORKERS)?),
            AioMode::IoUring => Engine::Uring(Box::new(uring::Uring::new(format.clone(), bound)?)),
        })
    }

    /// Starts `job`, or gives it back to be run inline (the sync engine,
    /// and what io_uring does not do asynchronously here).
    pub fn submit(&mut self, job: Job<T>) -> Result<(), Job<T>> {
        match self {
            Engine::Sync => Err(job),
            Engine::Threads(pool) => {
                pool.submit(job);
                Ok(())
            }
            Engine::Uring(ring) => ring.submit(job),
        }
    }

    /// Hands what [`submit`](Engine::submit) queued to the kernel or the
    /// workers (one io_uring_enter, one lock per batch); says what went in
    /// merged runs.
    pub fn commit(&mut self) -> merge::Merged {
        match self {
            Engine::Sync => merge::Merged::default(),
            Engine::Threads(pool) => pool.commit(),
            Engine::Uring(ring) => ring.commit(),
        }
    }

    pub fn host_fd(&self) -> Option<RawFd> {
        match self {
            Engine::Sync => None,
            Engine::Threads(pool) => Some(pool.event_fd()),
            Engine::Uring(ring) => Some(ring.event_fd()),
        }
    }

    /// Moves finished requests to `out`.
    pub fn reap(&mut self, out: &mut Vec<Finished<T>>) {
        match self {
            Engine::Sync => {}
            Engine::Threads(pool) => pool.reap(out),
            Engine::Uring(ring) => ring.reap(out),
        }
    }

    /// Like [`reap`](Engine::reap), but only when results are already
    /// there; cheap to call after every pass.
    pub fn reap_ready(&mut self, out: &mut Vec<Finished<T>>) {
        match self {
            Engine::Sync => {}
            Engine::Threads(pool) => pool.reap_ready(out),
            Engine::Uring(ring) => ring.reap_ready(out),
        }
    }

    /// Requests submitted and not reaped yet.
    pub fn in_flight(&self) -> usize {
        match self {
            Engine::Sync => 0,
            Engine::Threads(pool) => pool.in_flight(),
            Engine::Uring(ring) => ring.in_flight(),
        }
    }

    /// Waits until no request is in flight and forgets their results (the
    /// caller is being reset: nothing may reach it any more).
    pub fn quiesce(&mut self) {
        match self {
            Engine::Sync => {}
            Engine::Threads(pool) => pool.quiesce(),
            Engine::Uring(ring) => ring.quiesce(),
        }
    }
}

/// Runs `job` to completion on the calling thread.
pub(crate) fn run<T>(format: &dyn Format, buf: &mut AlignedBuf, job: Job<T>) -> Finished<T> {
    let result = exec::run(format, buf, &job.op, job.durable);
    job.finish(result)
}

/// Runs a merged run of adjacent reads or writes (from [`merge::batches`])
/// as one vectored transfer; each request gets its own result. When the
/// transfer cannot go as one (the run maps to more than one extent, a
/// buffer needs bouncing) or fails (an I/O error, the end of the file), the
/// requests run one by one, so each gets the status it would have had
/// alone: rewriting or rereading a range is harmless.
pub(crate) fn run_merged<T>(
    format: &dyn Format,
    buf: &mut AlignedBuf,
    jobs: Vec<Job<T>>,
    out: &mut Vec<Finished<T>>,
) {
    if jobs.len() > 1 {
        if let Some(result) = transfer_merged(format, &jobs) {
            out.extend(jobs.into_iter().map(|job| job.finish(Ok(()))));
            debug_assert!(result.is_ok());
            return;
        }
    }
    for job in jobs {
        out.push(run(format, buf, job));
    }
}

/// The one transfer of a merged run; Some(Ok) when every byte moved.
fn transfer_merged<T>(format: &dyn Format, jobs: &[Job<T>]) -> Option<io::Result<()>> {
    let first = merge::Extent::of(jobs.first()?)?;
    let mut bufs: Vec<IoBuf> = Vec::new();
    for job in jobs {
        let (Op::Read { bufs: b, .. } | Op::Write { bufs: b, .. }) = &job.op else {
            return None;
        };
        bufs.extend_from_slice(b);
    }
    let total = total_len(&bufs);
    let storage = format.storage();
    let host = match format.map(first.offset, total, first.write).ok()? {
        Mapping::Host { offset, len } if len == total => offset,
        _ => return None,
    };
    if !storage.alignment().fits(&bufs) {
        return None;
    }
    let durable = jobs.iter().any(|j| j.durable);
    let result = if first.write {
        storage.write_vectored_at(&bufs, host, durable)
    } else {
        storage.read_vectored_at(&bufs, host)
    };
    match result {
        Ok(()) => Some(Ok(())),
        Err(error) => {
            tracing::debug!(%error, "merged disk requests failed; running them one by one");
            None
        }
    }
}
