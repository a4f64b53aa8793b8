//! Block jobs: `block-commit` of a disk's active layer into the image
//! right below it, with QEMU's job API (`query-block-jobs`,
//! `block-job-complete`, `block-job-cancel`, `job-finalize`,
//! `job-dismiss`) and events (`JOB_STATUS_CHANGE`, `BLOCK_JOB_READY`,
//! `BLOCK_JOB_COMPLETED`, `BLOCK_JOB_CANCELLED`).
//!
//! The order, crash-safe at every step:
//! 1. start (main thread): the device's requests in flight finish and its
//!    image is flushed with the device loop paused, and from then on every
//!    guest write is logged (`WriteLog`); the overlay is opened again
//!    read-only and the base read-write, for the copy.
//! 2. copy (a `blk-commit` thread, under the disk workers' seccomp filter,
//!    never a vCPU or the device loop): every range the overlay holds
//!    itself is copied into the base, which is flushed; then the job is
//!    ready. The guest keeps writing to the overlay meanwhile, and the
//!    base's changes are below what the overlay holds, so the disk reads
//!    the same whenever the VMM stops.
//! 3. pivot (`block-job-complete`, main thread, device loop paused): the
//!    requests in flight finish, the overlay is flushed, the ranges the
//!    guest wrote since step 1 are copied again from a fresh reading of
//!    the overlay, the base is flushed, and only then does the device
//!    switch to the base (QEMU's mirror converges in the background; rvirt
//!    copies the logged ranges once, with the disk paused).
//!
//! Only active commits into the image right below are done: an
//! intermediate commit would rewrite the backing file name in the active
//! overlay's header, which imago does not offer yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rvirt_block::commit::{self, WriteLog, COMMIT_CHUNK};
use rvirt_block::{AioMode, Format, OpenOptions};
use rvirt_qmp::{BlockCommit, BlockJobEvent, BlockJobInfo, Event as QmpEvent, EventBus, QmpError};
use rvirt_vmm_config::{Backing, FormatNode};

use crate::disk::DiskModel;
use crate::events::{Event, EventSender};

/// QAPI `JobStatus`, as far as a commit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Ready,
    Concluded,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ready => "ready",
            Status::Concluded => "concluded",
        }
    }
}

/// What the copy thread and the monitor share.
#[derive(Default)]
struct Progress {
    offset: AtomicU64,
    len: AtomicU64,
    cancel: AtomicBool,
}

struct Job {
    id: String,
    disk: DiskModel,
    top: String,
    base: String,
    /// The base's node as the device will use it after the pivot.
    base_image: FormatNode,
    /// The base as the copy writes it (closed at the end of the job).
    base_fmt: Option<Arc<dyn Format>>,
    log: Arc<WriteLog>,
    progress: Arc<Progress>,
    status: Status,
    auto_finalize: bool,
    auto_dismiss: bool,
    error: Option<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Job {
    fn event(&self, error: Option<String>) -> BlockJobEvent {
        BlockJobEvent {
            kind: "commit".into(),
            device: self.id.clone(),
            len: self.progress.len.load(Ordering::Relaxed),
            offset: self.progress.offset.load(Ordering::Relaxed),
            speed: 0,
            error,
        }
    }

    fn info(&self) -> BlockJobInfo {
        BlockJobInfo {
            auto_finalize: self.auto_finalize,
            io_status: "ok".into(),
            device: self.id.clone(),
            auto_dismiss: self.auto_dismiss,
            busy: self.status == Status::Running,
            len: self.progress.len.load(Ordering::Relaxed),
            offset: self.progress.offset.load(Ordering::Relaxed),
            status: self.status.as_str().into(),
            paused: false,
            speed: 0,
            ready: self.status == Status::Ready,
            kind: "commit".into(),
            error: self.error.clone(),
        }
    }
}

/// The VM's block jobs. Changed by the main thread only; monitor threads
/// read it for `query-block-jobs` (a leaf mutex).
#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<BTreeMap<String, Job>>,
}

fn status_change(bus: &EventBus, id: &str, status: &str) {
    bus.post(QmpEvent::JobStatusChange {
        id: id.to_string(),
        status: status.to_string(),
    });
}

fn not_found(name: &str) -> QmpError {
    QmpError::generic(format!(
        "Cannot find device='{name}' nor node-name='{name}'"
    ))
}

fn not_in_chain(base: &str) -> QmpError {
    QmpError::generic(format!("'{base}' is not in this backing file chain"))
}

/// QEMU's answer to `block-job-*` naming no job.
fn no_block_job(id: &str) -> QmpError {
    QmpError {
        class: rvirt_qmp::ErrorClass::DeviceNotActive,
        desc: format!("Block job '{id}' not found"),
    }
}

fn verb_refused(id: &str, status: Status, verb: &str) -> QmpError {
    QmpError::generic(format!(
        "Job '{id}' in state '{}' cannot accept command verb '{verb}'",
        status.as_str()
    ))
}

/// The copy's open options: page cache, no engine.
fn copy_options(read_only: bool) -> OpenOptions {
    OpenOptions {
        read_only,
        direct: false,
        no_flush: false,
        write_cache: true,
        discard: false,
        aio: AioMode::Sync,
        queue_bound: 1,
    }
}

fn open_format(node: &FormatNode, read_only: bool) -> Result<Arc<dyn Format>, String> {
    let passed = |path: &std::path::Path, write: bool| crate::fdset::open(path, true, write);
    let mut spec = crate::disk::image_spec(node);
    spec.read_only = read_only;
    commit::open_format(&spec, &copy_options(read_only), &passed)
        .map_err(|e| crate::error_chain(&e))
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// QEMU's answer when `node`'s disk has a job that is not over: its
    /// image must not change under the job.
    pub(crate) fn check_idle(&self, node: &str) -> Result<(), QmpError> {
        let jobs = self.lock();
        if jobs
            .values()
            .any(|j| (j.top == node || j.base == node) && j.status != Status::Concluded)
        {
            return Err(QmpError::generic(format!(
                "Node '{node}' is busy: block device is in use by block job: commit"
            )));
        }
        Ok(())
    }

    /// `query-block-jobs`.
    pub(crate) fn infos(&self) -> Vec<BlockJobInfo> {
        self.lock().values().map(Job::info).collect()
    }

    /// `block-commit`: checks the request as QEMU does and starts the
    /// copy. `pause`: runs its argument with the device loop paused.
    pub(crate) fn start_commit(
        &self,
        args: BlockCommit,
        disks: &[DiskModel],
        nodes: &crate::block_nodes::BlockNodes,
        pause: &dyn Fn(&mut dyn FnMut()),
        events: &EventSender,
        bus: &EventBus,
    ) -> Result<(), QmpError> {
        let disk = disks
            .iter()
            .find(|d| {
                d.top_node().as_deref() == Some(args.device.as_str())
                    || d.qdev().as_deref() == Some(args.device.as_str())
            })
            .cloned()
            .ok_or_else(|| not_found(&args.device))?;
        let active = disk.top_node().ok_or_else(|| {
            QmpError::generic(format!(
                "disk '{}' has no named node: commits are of -blockdev disks",
                args.device
            ))
        })?;
        let top = args.top_node.clone().unwrap_or_else(|| active.clone());
        if !nodes.contains(&top) {
            return Err(not_found(&top));
        }
        let config = disk.image();
        let below = match &config.backing {
            Backing::Node(b) => b.node_name.clone(),
            _ => None,
        };
        let base = match (&args.base_node, &below) {
            (Some(b), _) => b.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => {
                return Err(QmpError::generic(format!(
                    "Top image '{top}' has no backing image named by a node"
                )))
            }
        };
        if !nodes.contains(&base) {
            return Err(not_found(&base));
        }
        if base == top {
            return Err(QmpError::generic("cannot commit an image into itself"));
        }
        if top != active {
            return Err(QmpError::generic(format!(
                "top-node '{top}' is below the active layer '{active}': rvirt commits only the active layer"
            )));
        }
        let Some(base_node) = config.backing_node().cloned() else {
            return Err(not_in_chain(&base));
        };
        if below.as_deref() != Some(base.as_str()) {
            // Deeper in the chain, or elsewhere.
            let mut n = base_node.backing_node();
            while let Some(b) = n {
                if b.node_name.as_deref() == Some(base.as_str()) {
                    return Err(QmpError::generic(format!(
                        "base-node '{base}' is not right below '{top}': rvirt commits only into the image right below"
                    )));
                }
                n = b.backing_node();
            }
            return Err(not_in_chain(&base));
        }
        let id = args.job_id.clone().unwrap_or_else(|| args.device.clone());
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return Err(QmpError::generic(format!("Job ID '{id}' already in use")));
        }
        if jobs
            .values()
            .any(|j| j.top == top && j.status != Status::Concluded)
        {
            return Err(QmpError::generic(format!(
                "Node '{top}' is busy: block device is in use by block job: commit"
            )));
        }
        // 1. Settle the disk and log its writes from here on.
        let log = Arc::new(WriteLog::default());
        let mut settled = Ok(());
        pause(&mut || settled = disk.settle_and_log(Some(log.clone())));
        settled.map_err(|e| QmpError::generic(format!("cannot settle '{top}': {e}")))?;
        let opened = open_format(&config, true).and_then(|t| {
            let mut b = base_node.clone();
            b.read_only = false;
            b.file.read_only = false;
            Ok((t, open_format(&b, false)?, b))
        });
        let (top_fmt, base_fmt, base_image) = match opened {
            Ok(o) => o,
            Err(e) => {
                pause(&mut || {
                    let _ = disk.settle_and_log(None);
                });
                return Err(QmpError::generic(format!("cannot open the chain: {e}")));
            }
        };
        let progress = Arc::new(Progress::default());
        status_change(bus, &id, "created");
        status_change(bus, &id, "running");
        let thread = spawn_copy(
            id.clone(),
            top_fmt,
            base_fmt.clone(),
            progress.clone(),
            events.clone(),
        )
        .map_err(|e| QmpError::generic(format!("cannot start the job: {e}")))?;
        tracing::info!(job = %id, top = %top, base = %base, "commit started");
        jobs.insert(
            id.clone(),
            Job {
                id,
                disk,
                top,
                base,
                base_image,
                base_fmt: Some(base_fmt),
                log,
                progress,
                status: Status::Running,
                auto_finalize: args.auto_finalize,
                auto_dismiss: args.auto_dismiss,
                error: None,
                thread: Some(thread),
            },
        );
        Ok(())
    }

    /// The copy thread of job `id` ended.
    pub(crate) fn copied(
        &self,
        id: &str,
        result: Result<(), String>,
        pause: &dyn Fn(&mut dyn FnMut()),
        bus: &EventBus,
    ) {
        let mut jobs = self.lock();
        let Some(job) = jobs.get_mut(id) else { return };
        if let Some(t) = job.thread.take() {
            let _ = t.join();
        }
        match result {
            Ok(()) if !job.progress.cancel.load(Ordering::Relaxed) => {
                job.status = Status::Ready;
                status_change(bus, id, "ready");
                bus.post(QmpEvent::BlockJobReady(job.event(None)));
            }
            result => {
                let cancelled = job.progress.cancel.load(Ordering::Relaxed);
                let disk = job.disk.clone();
                pause(&mut || {
                    let _ = disk.settle_and_log(None);
                });
                job.base_fmt = None;
                if cancelled {
                    status_change(bus, id, "aborting");
                    bus.post(QmpEvent::BlockJobCancelled(job.event(None)));
                } else {
                    let e = result.err();
                    job.error = e.clone();
                    status_change(bus, id, "aborting");
                    bus.post(QmpEvent::BlockJobCompleted(job.event(e)));
                }
                self.conclude(&mut jobs, id, bus);
            }
        }
    }

    fn conclude(&self, jobs: &mut BTreeMap<String, Job>, id: &str, bus: &EventBus) {
        let Some(job) = jobs.get_mut(id) else { return };
        job.status = Status::Concluded;
        status_change(bus, id, "concluded");
        if job.auto_dismiss {
            jobs.remove(id);
            status_change(bus, id, "null");
        }
    }

    /// `block-job-complete` of job `id`: the pivot (see the module's doc).
    /// On success the graph's nodes are updated by the caller with the
    /// returned (top, base).
    pub(crate) fn complete(
        &self,
        id: &str,
        pause: &dyn Fn(&mut dyn FnMut()),
        bus: &EventBus,
    ) -> Result<(String, String, String), QmpError> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(id).ok_or_else(|| no_block_job(id))?;
        if job.status != Status::Ready {
            return Err(verb_refused(id, job.status, "complete"));
        }
        let disk = job.disk.clone();
        let log = job.log.clone();
        let base_fmt = job.base_fmt.take();
        let base_image = job.base_image.clone();
        let top_image = disk.image();
        let mut result = Ok(());
        pause(&mut || {
            result = (|| -> Result<(), String> {
                disk.settle_and_log(None).map_err(|e| e.to_string())?;
                let base = base_fmt.as_ref().ok_or("the base is closed")?;
                // The overlay's tables as they are on disk now.
                let top = open_format(&top_image, true)?;
                let mut buf = vec![0u8; COMMIT_CHUNK as usize];
                commit::copy_ranges(&*top, &**base, &log.ranges(), &mut buf)
                    .map_err(|e| format!("cannot copy what the guest wrote: {e}"))?;
                commit::flush(&**base).map_err(|e| format!("cannot flush the base: {e}"))?;
                drop(top);
                disk.switch_image(base_image.clone())
            })();
        });
        drop(base_fmt);
        if let Err(e) = result {
            // The disk stays on the overlay, which holds everything.
            job.error = Some(e.clone());
            status_change(bus, id, "aborting");
            bus.post(QmpEvent::BlockJobCompleted(job.event(Some(e.clone()))));
            self.conclude(&mut jobs, id, bus);
            return Err(QmpError::generic(format!("cannot pivot to the base: {e}")));
        }
        let len = job.progress.len.load(Ordering::Relaxed);
        job.progress.offset.store(len, Ordering::Relaxed);
        status_change(bus, id, "waiting");
        status_change(bus, id, "pending");
        bus.post(QmpEvent::BlockJobCompleted(job.event(None)));
        let (top, base) = (job.top.clone(), job.base.clone());
        let device = disk.qdev().unwrap_or_default();
        tracing::info!(job = %id, "commit completed: the disk writes to the base");
        self.conclude(&mut jobs, id, bus);
        Ok((top, base, device))
    }

    /// `block-job-cancel` of job `id`: before it is ready, the copy stops;
    /// a ready job ends without the pivot (the disk stays on the overlay).
    pub(crate) fn cancel(
        &self,
        id: &str,
        pause: &dyn Fn(&mut dyn FnMut()),
        bus: &EventBus,
    ) -> Result<(), QmpError> {
        let mut jobs = self.lock();
        let job = jobs.get_mut(id).ok_or_else(|| no_block_job(id))?;
        match job.status {
            Status::Running => {
                // The copy thread stops at its next chunk and reports.
                job.progress.cancel.store(true, Ordering::Relaxed);
                Ok(())
            }
            Status::Ready => {
                let disk = job.disk.clone();
                pause(&mut || {
                    let _ = disk.settle_and_log(None);
                });
                job.base_fmt = None;
                status_change(bus, id, "waiting");
                status_change(bus, id, "pending");
                bus.post(QmpEvent::BlockJobCompleted(job.event(None)));
                self.conclude(&mut jobs, id, bus);
                Ok(())
            }
            Status::Concluded => Err(verb_refused(id, job.status, "cancel")),
        }
    }

    /// `job-finalize`: rvirt finalizes when the job completes; a
    /// concluded job accepts it.
    pub(crate) fn finalize(&self, id: &str) -> Result<(), QmpError> {
        let jobs = self.lock();
        let job = jobs
            .get(id)
            .ok_or_else(|| QmpError::generic("Job not found"))?;
        match job.status {
            Status::Concluded => Ok(()),
            s => Err(verb_refused(id, s, "finalize")),
        }
    }

    /// `job-dismiss` of a concluded job.
    pub(crate) fn dismiss(&self, id: &str, bus: &EventBus) -> Result<(), QmpError> {
        let mut jobs = self.lock();
        let job = jobs
            .get(id)
            .ok_or_else(|| QmpError::generic("Job not found"))?;
        if job.status != Status::Concluded {
            return Err(verb_refused(id, job.status, "dismiss"));
        }
        jobs.remove(id);
        status_change(bus, id, "null");
        Ok(())
    }

    /// Stops every copy (the VMM is ending): the base keeps what was
    /// copied, below what the overlay holds.
    pub(crate) fn stop_all(&self) {
        let mut jobs = self.lock();
        for job in jobs.values_mut() {
            job.progress.cancel.store(true, Ordering::Relaxed);
            if let Some(t) = job.thread.take() {
                let _ = t.join();
            }
            job.base_fmt = None;
        }
    }
}

/// Step 2: copies what `top` holds into `base` on a `blk-commit` thread,
/// then flushes the base and tells the main loop.
fn spawn_copy(
    id: String,
    top: Arc<dyn Format>,
    base: Arc<dyn Format>,
    progress: Arc<Progress>,
    events: EventSender,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("blk-commit".into())
        .spawn(move || {
            crate::sandbox::enter_block_io();
            let result = (|| -> Result<(), String> {
                let size = top.len().map_err(|e| e.to_string())?;
                // As QEMU counts: the work is the bytes the overlay holds.
                let work =
                    commit::allocated_bytes(&*top, size).map_err(|e| format!("cannot map: {e}"))?;
                progress.len.store(work, Ordering::Relaxed);
                let mut buf = vec![0u8; COMMIT_CHUNK as usize];
                let (mut at, mut done) = (0, 0);
                while at < size {
                    if progress.cancel.load(Ordering::Relaxed) {
                        return Err("cancelled".into());
                    }
                    let n = COMMIT_CHUNK.min(size - at);
                    done += commit::copy_allocated(&*top, &*base, at, n, &mut buf)
                        .map_err(|e| format!("cannot copy at {at}: {e}"))?;
                    at += n;
                    progress.offset.store(done.min(work), Ordering::Relaxed);
                }
                commit::flush(&*base).map_err(|e| format!("cannot flush the base: {e}"))
            })();
            drop(top);
            events.post(Event::JobCopied { id, result });
        })
}
