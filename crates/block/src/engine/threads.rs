//! aio=threads: blocking pread/pwrite/fdatasync on a few worker threads.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{merge, run_merged, Finished, Job};
use crate::aligned::AlignedBuf;
use crate::format::Format;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

struct State<T> {
    /// Runs of merged requests (most of one request).
    jobs: VecDeque<Vec<Job<T>>>,
    done: Vec<Finished<T>>,
    /// Runs queued or running.
    busy: usize,
    /// Workers waiting for a job.
    idle: usize,
    stop: bool,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            jobs: VecDeque::new(),
            done: Vec::new(),
            busy: 0,
            idle: 0,
            stop: false,
        }
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// `quiesce` waits here for `busy` to reach 0.
    idle: Condvar,
    /// Readable while `done` holds results.
    event: EventFd,
    format: Arc<dyn Format>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A worker that panicked left the lists consistent (it panics
        // outside the lock), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Pool<T> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs of the current pass, handed over together by `commit`: one lock
    /// and only as many wake-ups as there are idle workers.
    pending: Vec<Job<T>>,
    /// Submitted and not reaped: the caller bounds this by its queue size.
    in_flight: usize,
}

/// Run first on every worker thread started from now on (the VMM confines
/// its threads by kind this way); set once per process.
static WORKER_START: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Has every worker thread run `hook` before its first request.
pub fn on_worker_start(hook: fn()) {
    let _ = WORKER_START.set(hook);
}

impl<T: Send + 'static> Pool<T> {
    pub fn new(format: Arc<dyn Format>, workers: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            event: EventFd::new(EFD_NONBLOCK)?,
            format,
        });
        let mut pool = Pool {
            shared,
            workers: Vec::new(),
            pending: Vec::new(),
            in_flight: 0,
        };
        for i in 0..workers {
            let shared = pool.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("blk-io-{i}"))
                .spawn(move || {
                    if let Some(hook) = WORKER_START.get() {
                        hook();
                    }
                    worker(&shared)
                })?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    pub fn submit(&mut self, job: Job<T>) {
        self.pending.push(job);
        self.in_flight += 1;
    }

    pub fn commit(&mut self) -> merge::Merged {
        let mut merged = merge::Merged::default();
        if self.pending.is_empty() {
            return merged;
        }
        // Adjacent reads or writes of the pass become one preadv/pwritev.
        let runs = merge::batches(std::mem::take(&mut self.pending));
        let n = runs.len();
        for run in &runs {
            let write = merge::Extent::of(&run[0]).is_some_and(|e| e.write);
            merged.add(write, run.len());
        }
        let mut st = self.shared.lock();
        st.jobs.extend(runs);
        st.busy += n;
        let wake = st.idle.min(n);
        drop(st);
        for _ in 0..wake {
            self.shared.work.notify_one();
        }
        merged
    }

    pub fn event_fd(&self) -> RawFd {
        self.shared.event.as_raw_fd()
    }

    pub fn reap(&mut self, out: &mut Vec<Finished<T>>) {
        // Cleared before taking the list: a result added after this point
        // signals again.
        let _ = self.shared.event.read();
        let mut st = self.shared.lock();
        self.in_flight -= st.done.len();
        out.append(&mut st.done);
    }

    pub fn reap_ready(&mut self, out: &mut Vec<Finished<T>>) {
        if self.in_flight > 0 && !self.shared.lock().done.is_empty() {
            self.reap(out);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn quiesce(&mut self) {
        quiesce(&self.shared, &mut self.pending, &mut self.in_flight);
    }
}

/// Runs what is pending, waits for every job and forgets the results.
fn quiesce<T>(shared: &Shared<T>, pending: &mut Vec<Job<T>>, in_flight: &mut usize) {
    let runs = merge::batches(std::mem::take(pending));
    let mut st = shared.lock();
    st.busy += runs.len();
    st.jobs.extend(runs);
    shared.work.notify_all();
    while st.busy > 0 {
        st = shared.idle.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    st.done.clear();
    drop(st);
    let _ = shared.event.read();
    *in_flight = 0;
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        quiesce(&self.shared, &mut self.pending, &mut self.in_flight);
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker<T>(shared: &Shared<T>) {
    let mut buf = AlignedBuf::new(shared.format.storage().alignment().memory);
    let mut done = Vec::new();
    loop {
        let jobs = {
            let mut st = shared.lock();
            loop {
                if let Some(jobs) = st.jobs.pop_front() {
                    break jobs;
                }
                if st.stop {
                    return;
                }
                st.idle += 1;
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle -= 1;
            }
        };
        run_merged(&*shared.format, &mut buf, jobs, &mut done);
        let mut st = shared.lock();
        let was_empty = st.done.is_empty();
        st.done.append(&mut done);
        st.busy -= 1;
        if st.busy == 0 {
            shared.idle.notify_all();
        }
        drop(st);
        if was_empty {
            signal(&shared.event);
        }
    }
}

/// Makes the completion eventfd readable. Only EAGAIN (the counter is
/// saturated, so it is readable already) can fail.
fn signal(event: &EventFd) {
    if let Err(e) = event.write(1) {
        tracing::trace!(error = %e, "eventfd write");
    }
}
