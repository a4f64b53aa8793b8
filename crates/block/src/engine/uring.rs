//! aio=io_uring (and aio=native): reads, writes and fdatasync go through an
//! io_uring whose completions signal an eventfd.
//!
//! Reads and writes go zero-copy straight to the caller's buffers; buffers
//! O_DIRECT cannot take go through an aligned bounce buffer of up to
//! [`BOUNCE_MAX`]. Larger bounced requests, requests the format maps to
//! more than one extent, discards and write-zeroes are given back to run
//! inline: they are rare, and fallocate's fallbacks are synchronous.
//!
//! Zero-copy reads and writes wait in `pending` until the pass commits;
//! those adjacent on disk then go as one READV/WRITEV (see [`merge`]).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use io_uring::register::Restriction;
use io_uring::{opcode, squeue, types, IoUring};

use super::{merge, run, Finished, Job};
use crate::aligned::AlignedBuf;
use crate::buf::{advance, gather, iovecs, scatter, total_len, IoBuf};
use crate::format::{Format, Mapping};
use crate::request::Op;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Largest request bounced through io_uring (more is run inline).
pub const BOUNCE_MAX: usize = 1 << 20;
/// iovecs per readv/writev SQE (IOV_MAX).
const IOV_MAX: usize = merge::MAX_IOV;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

/// One submitted request. Its iovecs and bounce buffer are what the kernel
/// reads or writes until the CQE arrives, so it stays in `slots` until then.
struct Req<T> {
    /// The requests, in disk order, with their byte lengths: one, or a
    /// merged run of adjacent reads or writes.
    parts: Vec<(Job<T>, usize)>,
    kind: Kind,
    iov: Vec<libc::iovec>,
    /// Where in the storage.
    offset: u64,
    total: usize,
    moved: usize,
    /// RWF_DSYNC: durable when it completes.
    durable: bool,
    /// The bounce buffer and, for reads, the buffers to fill from it.
    bounce: Option<(AlignedBuf, Vec<IoBuf>)>,
}

// SAFETY: the raw pointers in `iov` point into the caller's buffers (valid
// until the request finishes: IoBuf::new's contract) or into `bounce`,
// owned by the request; nothing else dereferences them on the Rust side,
// so moving the request across threads (the device sits behind a Mutex)
// is fine.
unsafe impl<T: Send> Send for Req<T> {}

pub(crate) struct Uring<T> {
    ring: IoUring,
    event: EventFd,
    /// The image whose storage owns the registered descriptor; kept so it
    /// stays open.
    format: Arc<dyn Format>,
    /// Bounce buffer for requests of a failed merged run, rerun inline.
    buf: AlignedBuf,
    /// Zero-copy reads and writes of this pass, not yet in the SQ.
    pending: Vec<Req<T>>,
    slots: Vec<Option<Req<T>>>,
    free: Vec<usize>,
    in_flight: usize,
    /// What went in merged runs since the last commit.
    merged: merge::Merged,
    /// SQEs pushed but not yet handed to the kernel.
    unsubmitted: bool,
}

impl<T> Uring<T> {
    /// A ring with room for `bound` requests in flight.
    pub fn new(format: Arc<dyn Format>, bound: u16) -> io::Result<Self> {
        let storage = format.storage();
        let fd = storage.raw_fd().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring needs a disk backed by a file descriptor",
            )
        })?;
        let bound = bound.max(1);
        // io_uring performs its operations outside seccomp's reach, so the
        // ring is created disabled, restricted to what a disk needs
        // (positioned reads and writes and fdatasync on the registered
        // image, no other file, no further registration), then enabled: a
        // compromised VMM holding it can do nothing else with it (and the
        // sandbox forbids making new rings once the VM runs).
        let ring = IoUring::builder()
            .setup_r_disabled()
            .build(u32::from(bound))?;
        let event = EventFd::new(EFD_NONBLOCK)?;
        let sub = ring.submitter();
        sub.register_eventfd(event.as_raw_fd())?;
        sub.register_files(&[fd])?;
        let fixed = squeue::Flags::FIXED_FILE.bits();
        sub.register_restrictions(&mut [
            Restriction::sqe_op(opcode::Readv::CODE),
            Restriction::sqe_op(opcode::Writev::CODE),
            Restriction::sqe_op(opcode::Fsync::CODE),
            Restriction::sqe_flags_allowed(fixed),
            Restriction::sqe_flags_required(fixed),
        ])?;
        sub.register_enable_rings()?;
        let n = usize::from(bound);
        Ok(Uring {
            ring,
            event,
            buf: AlignedBuf::new(storage.alignment().memory),
            pending: Vec::new(),
            format,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            in_flight: 0,
            merged: merge::Merged::default(),
            unsubmitted: false,
        })
    }

    pub fn event_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn submit(&mut self, job: Job<T>) -> Result<(), Job<T>> {
        // Every pending request may still need a slot of its own.
        if self.free.len() <= self.pending.len() {
            return Err(job);
        }
        let storage = self.format.storage();
        let req = match &job.op {
            Op::Flush => {
                if !storage.flushes() {
                    // cache.no-flush: nothing to wait for.
                    return Err(job);
                }
                // Not merged across: the writes before it go to the SQ first.
                self.push_pending();
                Req {
                    kind: Kind::Flush,
                    iov: Vec::new(),
                    offset: 0,
                    total: 0,
                    moved: 0,
                    durable: false,
                    bounce: None,
                    parts: vec![(job, 0)],
                }
            }
            Op::Read { offset, bufs } | Op::Write { offset, bufs } => {
                let write = matches!(job.op, Op::Write { .. });
                let kind = if write { Kind::Write } else { Kind::Read };
                let total = total_len(bufs);
                let Ok(n) = usize::try_from(total) else {
                    return Err(job);
                };
                // One host extent for the whole request, or inline.
                let offset = match self.format.map(*offset, total, write) {
                    Ok(Mapping::Host { offset, len }) if len == total => offset,
                    _ => return Err(job),
                };
                let durable = job.durable && !storage.writes_through();
                if storage.alignment().fits(bufs) && bufs.len() <= IOV_MAX {
                    let iov = iovecs(bufs);
                    self.pending.push(Req {
                        kind,
                        iov,
                        offset,
                        total: n,
                        moved: 0,
                        durable,
                        bounce: None,
                        parts: vec![(job, n)],
                    });
                    self.in_flight += 1;
                    return Ok(());
                }
                if n > BOUNCE_MAX {
                    return Err(job);
                }
                let mut buf = AlignedBuf::with_len(storage.alignment().memory, n);
                if write {
                    gather(bufs, 0, buf.as_mut_slice());
                }
                let iov = vec![libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: n,
                }];
                let fill = if write { Vec::new() } else { bufs.clone() };
                Req {
                    kind,
                    iov,
                    offset,
                    total: n,
                    moved: 0,
                    durable,
                    bounce: Some((buf, fill)),
                    parts: vec![(job, n)],
                }
            }
            _ => return Err(job),
        };
        self.in_flight += 1;
        self.start(req);
        Ok(())
    }

    /// Puts `req` in a free slot and queues its SQE. The caller made sure
    /// of the slot: requests in slots and pending never outnumber them.
    fn start(&mut self, req: Req<T>) {
        let Some(slot) = self.free.pop() else {
            // Unreachable: `submit` keeps a slot for every pending request
            // (a merged run takes fewer). Keep the count right at least.
            debug_assert!(false, "io_uring slots exhausted");
            tracing::error!("io_uring slots exhausted; requests dropped");
            self.in_flight -= req.parts.len();
            return;
        };
        self.slots[slot] = Some(req);
        self.push(slot);
    }

    /// Moves the pending reads and writes to the SQ, adjacent ones merged.
    fn push_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut reqs: Vec<Option<Req<T>>> = self.pending.drain(..).map(Some).collect();
        let extents: Vec<merge::Extent> = reqs
            .iter()
            .flatten()
            .map(|r| merge::Extent {
                write: r.kind == Kind::Write,
                offset: r.offset,
                len: r.total as u64,
                iovs: r.iov.len(),
            })
            .collect();
        for run in merge::plan(&extents) {
            let mut it = run.iter().filter_map(|&i| reqs[i].take());
            let Some(mut merged) = it.next() else {
                continue;
            };
            for r in it {
                merged.iov.extend_from_slice(&r.iov);
                merged.total += r.total;
                merged.durable |= r.durable;
                merged.parts.extend(r.parts);
            }
            self.merged
                .add(merged.kind == Kind::Write, merged.parts.len());
            self.start(merged);
        }
    }

    /// Queues the SQE for `slots[slot]` (its remaining bytes).
    fn push(&mut self, slot: usize) {
        let Some(req) = &self.slots[slot] else {
            return;
        };
        // The image is registered file 0 (the ring accepts no other).
        let fd = types::Fixed(0);
        let entry = match req.kind {
            Kind::Flush => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
            Kind::Read => opcode::Readv::new(fd, req.iov.as_ptr(), req.iov.len() as u32)
                .offset(req.offset + req.moved as u64)
                .build(),
            Kind::Write => opcode::Writev::new(fd, req.iov.as_ptr(), req.iov.len() as u32)
                .offset(req.offset + req.moved as u64)
                .rw_flags(if req.durable { libc::RWF_DSYNC } else { 0 })
                .build(),
        }
        .user_data(slot as u64);
        loop {
            // SAFETY: the iovecs and the buffers they name belong to the
            // request in `slots[slot]`, which stays there (and keeps guest
            // memory mapped) until this SQE's completion is reaped; `Drop`
            // waits for every completion.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                break;
            }
            // The SQ holds as many entries as requests may be in flight, so this only happens with a resubmission racing
            // a full SQ: hand the queued entries over and retry.
            if let Err(error) = self.ring.submit() {
                tracing::warn!(%error, "io_uring submit failed");
            }
        }
        self.unsubmitted = true;
    }

    pub fn commit(&mut self) -> merge::Merged {
        self.submit_all();
        std::mem::take(&mut self.merged)
    }

    /// Pushes the pending requests and hands the SQ to the kernel.
    fn submit_all(&mut self) {
        self.push_pending();
        if !self.unsubmitted {
            return;
        }
        loop {
            match self.ring.submit() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EAGAIN/EBUSY: the kernel takes them on the next call; the
                // CQEs that do arrive will bring us back here.
                Err(error) => {
                    tracing::warn!(%error, "io_uring submit failed");
                    // Still in the SQ: the next pass submits them.
                    return;
                }
            }
        }
        self.unsubmitted = false;
    }

    pub fn reap(&mut self, out: &mut Vec<Finished<T>>) {
        let _ = self.event.read();
        self.reap_into(Some(out));
    }

    /// Takes completions already posted (buffered I/O on cached pages
    /// completes inside io_uring_enter), sparing the eventfd round trip.
    pub fn reap_ready(&mut self, out: &mut Vec<Finished<T>>) {
        if self.in_flight > 0 && !self.ring.completion().is_empty() {
            self.reap(out);
        }
    }

    /// Takes every CQE; finished requests go to `out` (or are dropped when
    /// `out` is None: a reset). Short transfers are resubmitted for the rest.
    fn reap_into(&mut self, mut out: Option<&mut Vec<Finished<T>>>) {
        let mut cqes: Vec<(usize, i32)> = Vec::new();
        let mut dropped = Vec::new();
        loop {
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data() as usize, c.result())),
            );
            if cqes.is_empty() {
                break;
            }
            for &(slot, res) in &cqes {
                match out.as_deref_mut() {
                    Some(out) => self.complete(slot, res, true, out),
                    None => {
                        self.complete(slot, res, false, &mut dropped);
                        dropped.clear();
                    }
                }
            }
        }
        self.submit_all();
    }

    /// Handles the CQE of `slots[slot]`; the requests it finishes go to
    /// `out` (not written to guest memory unless `deliver`).
    fn complete(&mut self, slot: usize, res: i32, deliver: bool, out: &mut Vec<Finished<T>>) {
        let Some(req) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else if req.kind == Kind::Flush {
            Ok(())
        } else if res == 0 && req.moved < req.total {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "disk ended before the request did",
            ))
        } else {
            req.moved += res as usize;
            if req.moved < req.total && deliver {
                advance(&mut req.iov, res as usize);
                self.push(slot);
                return;
            }
            if req.moved < req.total {
                Err(io::Error::from(io::ErrorKind::Interrupted))
            } else {
                Ok(())
            }
        };
        let Some(mut req) = self.slots[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.in_flight -= req.parts.len();
        if req.parts.len() == 1 {
            let (job, _) = req.parts.pop().expect("one part");
            if result.is_ok() && req.kind == Kind::Read && deliver {
                if let Some((buf, fill)) = &req.bounce {
                    scatter(fill, 0, buf.as_slice());
                }
            }
            out.push(job.finish(result));
            return;
        }
        // A merged run: the requests wholly transferred are done; after an
        // error or the end of the file, the others run again alone, so each
        // gets its own status (rereading or rewriting a range is harmless).
        if let Err(error) = &result {
            tracing::debug!(%error, "merged disk requests failed; running the rest one by one");
        }
        let mut at = 0usize;
        for (job, len) in req.parts {
            at += len;
            if at <= req.moved {
                out.push(job.finish(Ok(())));
            } else if deliver {
                out.push(run(&*self.format, &mut self.buf, job));
            }
        }
    }

    pub fn quiesce(&mut self) {
        self.push_pending();
        while self.in_flight > 0 {
            self.unsubmitted = false;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Cannot wait, so cannot free the buffers safely: keep
                    // spinning rather than let the kernel write into freed
                    // memory.
                    tracing::warn!(%error, "io_uring wait failed");
                    std::thread::yield_now();
                }
            }
            self.reap_into(None);
        }
        let _ = self.event.read();
    }
}

impl<T> Drop for Uring<T> {
    fn drop(&mut self) {
        self.quiesce();
    }
}
