//! aio=threads: blocking pread/pwrite/fdatasync on a few worker threads.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::super::aligned::AlignedBuf;
use super::super::disk::DiskBackend;
use super::{merge, run_merged, Done, Job};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

#[derive(Default)]
struct State {
    /// Runs of merged requests (most of one request).
    jobs: VecDeque<Vec<Job>>,
    done: Vec<Done>,
    /// Runs queued or running.
    busy: usize,
    /// Workers waiting for a job.
    idle: usize,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// `quiesce` waits here for `busy` to reach 0.
    idle: Condvar,
    /// Readable while `done` holds results.
    event: EventFd,
    disk: Arc<dyn DiskBackend>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked left the lists consistent (it panics
        // outside the lock), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Jobs of the current pass, handed over together by `commit`: one lock
    /// and only as many wake-ups as there are idle workers.
    pending: Vec<Job>,
    /// Submitted and not reaped: the device bounds this by the queue size.
    in_flight: usize,
    /// Requests issued as part of a merged run, ever.
    merged: usize,
}

impl Pool {
    pub fn new(disk: Arc<dyn DiskBackend>, workers: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            event: EventFd::new(EFD_NONBLOCK)?,
            disk,
        });
        let mut pool = Pool {
            shared,
            workers: Vec::new(),
            pending: Vec::new(),
            in_flight: 0,
            merged: 0,
        };
        for i in 0..workers {
            let shared = pool.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("blk-io-{i}"))
                .spawn(move || worker(&shared))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    pub fn submit(&mut self, job: Job) {
        self.pending.push(job);
        self.in_flight += 1;
    }

    pub fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Adjacent reads or writes of the pass become one preadv/pwritev.
        let runs = merge::batches(std::mem::take(&mut self.pending));
        let n = runs.len();
        self.merged += runs
            .iter()
            .filter(|r| r.len() > 1)
            .map(Vec::len)
            .sum::<usize>();
        let mut st = self.shared.lock();
        st.jobs.extend(runs);
        st.busy += n;
        let wake = st.idle.min(n);
        drop(st);
        for _ in 0..wake {
            self.shared.work.notify_one();
        }
    }

    pub fn event_fd(&self) -> RawFd {
        self.shared.event.as_raw_fd()
    }

    pub fn reap(&mut self, out: &mut Vec<Done>) {
        // Cleared before taking the list: a result added after this point
        // signals again.
        let _ = self.shared.event.read();
        let mut st = self.shared.lock();
        self.in_flight -= st.done.len();
        out.append(&mut st.done);
    }

    pub fn reap_ready(&mut self, out: &mut Vec<Done>) {
        if self.in_flight > 0 && !self.shared.lock().done.is_empty() {
            self.reap(out);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    #[cfg(test)]
    pub fn merged(&self) -> usize {
        self.merged
    }

    pub fn quiesce(&mut self) {
        self.commit();
        let mut st = self.shared.lock();
        while st.busy > 0 {
            st = self.shared.idle.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.done.clear();
        drop(st);
        let _ = self.shared.event.read();
        self.in_flight = 0;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.quiesce();
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(shared: &Shared) {
    let mut buf = AlignedBuf::new(shared.disk.alignment().memory);
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
        run_merged(&*shared.disk, &mut buf, &jobs, &mut done);
        // The jobs (and their hold on guest memory) go before the device
        // can see the requests as finished.
        drop(jobs);
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
