//! Where requests run: inline (sync), on a worker pool (aio=threads) or
//! through io_uring (aio=io_uring and aio=native).
//!
//! The device hands an engine one [`Job`] per parsed request and gets a
//! [`Done`] back later through [`Engine::reap`], which the VMM's event loop
//! triggers when [`Engine::host_fd`] (an eventfd) becomes readable. Each job
//! holds the guest memory (`Arc<Memory>`), so the mappings its buffers point
//! into outlive the I/O; [`Engine::quiesce`] waits for every job, so no I/O
//! reaches a guest after a device reset.

mod merge;
mod threads;
mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use vm_memory::GuestAddress;

use super::aligned::AlignedBuf;
use super::disk::DiskBackend;
use super::exec::{direct_slices, Executor, Status};
use super::open::AioMode;
use super::request::Operation;
use crate::Memory;

/// A request on its way to the disk.
pub(crate) struct Job {
    pub head: u16,
    /// Where the status byte goes.
    pub status: GuestAddress,
    pub op: Operation,
    pub mem: Arc<Memory>,
}

/// A finished request, ready for the used ring.
#[derive(Debug)]
pub(crate) struct Done {
    pub head: u16,
    /// Where the status byte goes; None: the chain had no room for one.
    pub status: Option<GuestAddress>,
    pub result: Status,
    /// Bytes written into guest buffers, not counting the status byte.
    pub written: u32,
}

pub(crate) enum Engine {
    Sync,
    Threads(threads::Pool),
    Uring(Box<uring::Uring>),
}

/// Worker threads for aio=threads. QEMU's pool grows to 64; two cores here
/// and one queue make a handful enough to keep the disk busy.
pub const WORKERS: usize = 4;

#[cfg(test)]
pub(crate) const BOUNCE_MAX_FOR_TESTS: usize = uring::BOUNCE_MAX;

impl Engine {
    pub fn new(backend: &Arc<dyn DiskBackend>, aio: AioMode) -> io::Result<Self> {
        Ok(match aio {
            AioMode::Sync => Engine::Sync,
            AioMode::Threads => Engine::Threads(threads::Pool::new(backend.clone(), WORKERS)?),
            AioMode::IoUring | AioMode::Native => {
                Engine::Uring(Box::new(uring::Uring::new(backend.clone())?))
            }
        })
    }

    /// Starts `job`, or gives it back to be run inline (the sync engine,
    /// and what io_uring does not do asynchronously here).
    pub fn submit(&mut self, job: Job) -> Result<(), Job> {
        match self {
            Engine::Sync => Err(job),
            Engine::Threads(pool) => {
                pool.submit(job);
                Ok(())
            }
            Engine::Uring(ring) => ring.submit(job),
        }
    }

    /// Hands what [`submit`](Engine::submit) queued to the kernel (one
    /// io_uring_enter per batch).
    pub fn commit(&mut self) {
        match self {
            Engine::Sync => {}
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
    pub fn reap(&mut self, out: &mut Vec<Done>) {
        match self {
            Engine::Sync => {}
            Engine::Threads(pool) => pool.reap(out),
            Engine::Uring(ring) => ring.reap(out),
        }
    }

    /// Like [`reap`](Engine::reap), but only when results are already
    /// there; cheap to call after every pass.
    pub fn reap_ready(&mut self, out: &mut Vec<Done>) {
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

    /// Requests the engine issued as part of a merged run, ever.
    #[cfg(test)]
    pub fn merged(&self) -> usize {
        match self {
            Engine::Sync => 0,
            Engine::Threads(pool) => pool.merged(),
            Engine::Uring(ring) => ring.merged(),
        }
    }

    /// Waits until no request is in flight and forgets their results (the
    /// device is being reset: nothing may reach the guest any more).
    pub fn quiesce(&mut self) {
        match self {
            Engine::Sync => {}
            Engine::Threads(pool) => pool.quiesce(),
            Engine::Uring(ring) => ring.quiesce(),
        }
    }
}

/// Runs `job` to completion on the calling thread. Read-only devices are
/// refused before a job is made, so the executor need not check.
pub(crate) fn run(disk: &dyn DiskBackend, buf: &mut AlignedBuf, job: &Job) -> Done {
    let mut exec = Executor {
        disk,
        read_only: false,
        serial: &[],
        buf,
    };
    let (result, written) = match exec.run(&job.mem, &job.op) {
        Ok(written) => (Status::Ok, written),
        Err(error) => {
            tracing::debug!(%error, "virtio-blk request failed");
            (Status::IoErr, 0)
        }
    };
    Done {
        head: job.head,
        status: Some(job.status),
        result,
        written,
    }
}

/// Runs a merged run of adjacent reads or writes (from [`merge::batches`])
/// as one vectored transfer; each request gets its own result. When the
/// transfer fails (an I/O error, the end of the file, a buffer that needs
/// bouncing), the requests run one by one, so each gets the status it
/// would have had alone: rewriting or rereading a range is harmless.
pub(crate) fn run_merged(
    disk: &dyn DiskBackend,
    buf: &mut AlignedBuf,
    jobs: &[Job],
    out: &mut Vec<Done>,
) {
    if let [job] = jobs {
        out.push(run(disk, buf, job));
        return;
    }
    if let Some(write) = transfer_merged(disk, jobs) {
        for job in jobs {
            let written = match &job.op {
                Operation::Read { data, .. } if !write => {
                    u32::try_from(crate::chain::total_len(data)).unwrap_or(u32::MAX)
                }
                _ => 0,
            };
            out.push(Done {
                head: job.head,
                status: Some(job.status),
                result: Status::Ok,
                written,
            });
        }
        return;
    }
    for job in jobs {
        out.push(run(disk, buf, job));
    }
}

/// The one transfer of a merged run; Some(is a write) when every byte moved.
fn transfer_merged(disk: &dyn DiskBackend, jobs: &[Job]) -> Option<bool> {
    let first = merge::Extent::of(jobs.first()?)?;
    let mut slices = Vec::new();
    for job in jobs {
        let (Operation::Read { data, .. } | Operation::Write { data, .. }) = &job.op else {
            return None;
        };
        slices.extend(direct_slices(&job.mem, data, disk)?);
    }
    let result = if first.write {
        disk.write_vectored_at(&slices, first.offset)
    } else {
        disk.read_vectored_at(&slices, first.offset)
    };
    match result {
        Ok(()) => Some(first.write),
        Err(error) => {
            tracing::debug!(%error, "merged virtio-blk requests failed; running them one by one");
            None
        }
    }
}
