//! aio=io_uring (and aio=native): reads, writes and fdatasync go through an
//! io_uring whose completions signal an eventfd.
//!
//! Reads and writes go zero-copy straight to guest memory; buffers O_DIRECT
//! cannot take go through an aligned bounce buffer of up to [`BOUNCE_MAX`].
//! Larger bounced requests, discards, write-zeroes and GET_ID are given back
//! to run inline: they are rare, and fallocate's fallbacks are synchronous.
//!
//! Zero-copy reads and writes wait in `pending` until the pass commits;
//! those adjacent on disk then go as one READV/WRITEV (see [`merge`]).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types, IoUring};
use vm_memory::Bytes;

use super::super::aligned::AlignedBuf;
use super::super::disk::{advance, iovecs, DiskBackend};
use super::super::exec::{direct_slices, Status};
use super::super::request::Operation;
use super::super::QUEUE_SIZE;
use super::{merge, run, Done, Job};
use crate::chain::Segment;
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
struct Req {
    /// The requests, in disk order, with their byte lengths: one, or a
    /// merged run of adjacent reads or writes.
    parts: Vec<(Job, usize)>,
    kind: Kind,
    iov: Vec<libc::iovec>,
    offset: u64,
    total: usize,
    moved: usize,
    /// The bounce buffer and, for reads, the guest segments to fill from it.
    bounce: Option<(AlignedBuf, Vec<Segment>)>,
}

// SAFETY: the raw pointers in `iov` point into guest memory (kept mapped by
// `job.mem`) or into `bounce`, both owned by the request; nothing else
// dereferences them on the Rust side, so moving the request across threads
// (the device sits behind a Mutex) is fine.
unsafe impl Send for Req {}

pub(crate) struct Uring {
    ring: IoUring,
    event: EventFd,
    /// The backend that owns `fd`; kept so the descriptor stays open.
    disk: Arc<dyn DiskBackend>,
    fd: RawFd,
    /// Bounce buffer for requests of a failed merged run, rerun inline.
    buf: AlignedBuf,
    /// Zero-copy reads and writes of this pass, not yet in the SQ.
    pending: Vec<Req>,
    slots: Vec<Option<Req>>,
    free: Vec<usize>,
    in_flight: usize,
    /// Requests issued as part of a merged run, ever.
    merged: usize,
    /// SQEs pushed but not yet handed to the kernel.
    unsubmitted: bool,
}

impl Uring {
    pub fn new(disk: Arc<dyn DiskBackend>) -> io::Result<Self> {
        let fd = disk.raw_fd().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring needs a disk backed by a file descriptor",
            )
        })?;
        let entries = u32::from(QUEUE_SIZE);
        let ring = IoUring::new(entries)?;
        let event = EventFd::new(EFD_NONBLOCK)?;
        ring.submitter().register_eventfd(event.as_raw_fd())?;
        let n = usize::from(QUEUE_SIZE);
        Ok(Uring {
            ring,
            event,
            buf: AlignedBuf::new(disk.alignment().memory),
            pending: Vec::new(),
            disk,
            fd,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            in_flight: 0,
            merged: 0,
            unsubmitted: false,
        })
    }

    pub fn event_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    #[cfg(test)]
    pub fn merged(&self) -> usize {
        self.merged
    }

    pub fn submit(&mut self, job: Job) -> Result<(), Job> {
        // Every pending request may still need a slot of its own.
        if self.free.len() <= self.pending.len() {
            return Err(job);
        }
        let req = match &job.op {
            Operation::Flush => {
                if !self.disk.flushes() {
                    // cache=unsafe: nothing to wait for.
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
                    bounce: None,
                    parts: vec![(job, 0)],
                }
            }
            Operation::Read { offset, data } | Operation::Write { offset, data } => {
                let kind = if matches!(job.op, Operation::Read { .. }) {
                    Kind::Read
                } else {
                    Kind::Write
                };
                let offset = *offset;
                let total = crate::chain::total_len(data);
                let (iov, bounce) = match direct_slices(&job.mem, data, &*self.disk) {
                    Some(slices) if slices.len() <= IOV_MAX => {
                        let iov = iovecs(&slices);
                        drop(slices);
                        self.pending.push(Req {
                            kind,
                            iov,
                            offset,
                            total: total as usize,
                            moved: 0,
                            bounce: None,
                            parts: vec![(job, total as usize)],
                        });
                        self.in_flight += 1;
                        return Ok(());
                    }
                    _ => {
                        let Ok(n) = usize::try_from(total) else {
                            return Err(job);
                        };
                        if n > BOUNCE_MAX {
                            return Err(job);
                        }
                        let mut buf = AlignedBuf::with_len(self.disk.alignment().memory, n);
                        if kind == Kind::Write
                            && gather(&job.mem, data, buf.as_mut_slice()).is_err()
                        {
                            // Let the inline path report the bad buffer.
                            return Err(job);
                        }
                        let iov = vec![libc::iovec {
                            iov_base: buf.as_mut_ptr().cast(),
                            iov_len: n,
                        }];
                        let segs = if kind == Kind::Read {
                            data.clone()
                        } else {
                            Vec::new()
                        };
                        (iov, Some((buf, segs)))
                    }
                };
                Req {
                    kind,
                    iov,
                    offset,
                    total: total as usize,
                    moved: 0,
                    bounce,
                    parts: vec![(job, total as usize)],
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
    fn start(&mut self, req: Req) {
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
        let mut reqs: Vec<Option<Req>> = self.pending.drain(..).map(Some).collect();
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
                merged.parts.extend(r.parts);
            }
            if merged.parts.len() > 1 {
                self.merged += merged.parts.len();
            }
            self.start(merged);
        }
    }

    /// Queues the SQE for `slots[slot]` (its remaining bytes).
    fn push(&mut self, slot: usize) {
        let Some(req) = &self.slots[slot] else {
            return;
        };
        let fd = types::Fd(self.fd);
        let entry = match req.kind {
            Kind::Flush => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
            Kind::Read => opcode::Readv::new(fd, req.iov.as_ptr(), req.iov.len() as u32)
                .offset(req.offset + req.moved as u64)
                .build(),
            Kind::Write => opcode::Writev::new(fd, req.iov.as_ptr(), req.iov.len() as u32)
                .offset(req.offset + req.moved as u64)
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
            // The SQ holds QUEUE_SIZE entries and at most that many requests
            // are in flight, so this only happens with a resubmission racing
            // a full SQ: hand the queued entries over and retry.
            if let Err(error) = self.ring.submit() {
                tracing::warn!(%error, "io_uring submit failed");
            }
        }
        self.unsubmitted = true;
    }

    pub fn commit(&mut self) {
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

    pub fn reap(&mut self, out: &mut Vec<Done>) {
        let _ = self.event.read();
        self.reap_into(Some(out));
    }

    /// Takes completions already posted (buffered I/O on cached pages
    /// completes inside io_uring_enter), sparing the eventfd round trip.
    pub fn reap_ready(&mut self, out: &mut Vec<Done>) {
        if self.in_flight > 0 && !self.ring.completion().is_empty() {
            self.reap(out);
        }
    }

    /// Takes every CQE; finished requests go to `out` (or are dropped when
    /// `out` is None: a reset). Short transfers are resubmitted for the rest.
    fn reap_into(&mut self, mut out: Option<&mut Vec<Done>>) {
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
        self.commit();
    }

    /// Handles the CQE of `slots[slot]`; the requests it finishes go to
    /// `out` (not written to guest memory unless `deliver`).
    fn complete(&mut self, slot: usize, res: i32, deliver: bool, out: &mut Vec<Done>) {
        let Some(req) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let result = if res < 0 {
            tracing::debug!(
                error = %io::Error::from_raw_os_error(-res),
                "virtio-blk request failed"
            );
            Status::IoErr
        } else if req.kind == Kind::Flush {
            Status::Ok
        } else if res == 0 && req.moved < req.total {
            tracing::debug!("virtio-blk request ran past the end of the disk");
            Status::IoErr
        } else {
            req.moved += res as usize;
            if req.moved < req.total && deliver {
                advance(&mut req.iov, res as usize);
                self.push(slot);
                return;
            }
            if req.moved < req.total {
                Status::IoErr
            } else {
                Status::Ok
            }
        };
        let Some(req) = self.slots[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.in_flight -= req.parts.len();
        if let [(job, _)] = &req.parts[..] {
            let mut done = Done {
                head: job.head,
                status: Some(job.status),
                result,
                written: 0,
            };
            if result == Status::Ok && req.kind == Kind::Read {
                if let Some((buf, segs)) = &req.bounce {
                    if deliver && scatter(&job.mem, &segs[..], buf.as_slice()).is_err() {
                        done.result = Status::IoErr;
                        out.push(done);
                        return;
                    }
                }
                done.written = u32::try_from(req.total).unwrap_or(u32::MAX);
            }
            out.push(done);
            return;
        }
        // A merged run: the requests wholly transferred are done; after an
        // error or the end of the file, the others run again alone, so each
        // gets its own status (rereading or rewriting a range is harmless).
        let mut at = 0usize;
        for (job, len) in &req.parts {
            at += len;
            if at <= req.moved {
                out.push(Done {
                    head: job.head,
                    status: Some(job.status),
                    result: Status::Ok,
                    written: if req.kind == Kind::Read {
                        u32::try_from(*len).unwrap_or(u32::MAX)
                    } else {
                        0
                    },
                });
            } else if deliver {
                out.push(run(&*self.disk, &mut self.buf, job));
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

impl Drop for Uring {
    fn drop(&mut self) {
        self.quiesce();
    }
}

/// Copies the guest segments into `buf` (a write's bounce buffer).
fn gather(mem: &crate::Memory, data: &[Segment], buf: &mut [u8]) -> Result<(), ()> {
    let mut at = 0usize;
    for seg in data {
        let n = seg.len as usize;
        mem.read_slice(&mut buf[at..at + n], seg.addr)
            .map_err(|_| ())?;
        at += n;
    }
    Ok(())
}

/// Copies a read's bounce buffer out to the guest segments.
fn scatter(mem: &crate::Memory, data: &[Segment], buf: &[u8]) -> Result<(), ()> {
    let mut at = 0usize;
    for seg in data {
        let n = seg.len as usize;
        mem.write_slice(&buf[at..at + n], seg.addr)
            .map_err(|_| ())?;
        at += n;
    }
    Ok(())
}
