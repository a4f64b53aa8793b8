//! The device event loop: one thread per boot that does all device work
//! driven by host descriptors (virtio queue kicks, a tap with frames, an
//! I/O completion, a level interrupt's resample), so vCPU threads only
//! ever run register accesses.
//!
//! Anything with descriptors to wait on joins as a [`Subscriber`]: the
//! virtio devices today, and whatever non-virtio device needs the same
//! (a display's VNC clients, fw_cfg DMA completion...). The loop can be
//! paused and resumed: [`EventLoop::pause`] returns once no subscriber is
//! running and none will until [`EventLoop::resume`]; the main loop pauses
//! it after the vCPUs and resumes it before them. See docs/vmm-threads.md.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The token a subscriber's dynamic descriptor is reported with.
pub(crate) const DYNAMIC: u32 = u32::MAX;
/// The token of a subscriber's dynamic descriptor polled for writability.
pub(crate) const DYNAMIC_OUT: u32 = u32::MAX - 1;

/// Something the event loop serves.
pub(crate) trait Subscriber: Send {
    /// The descriptors to wait on for readability for the subscriber's
    /// whole life, each with the token [`Subscriber::handle`] gets back.
    fn fixed_fds(&self) -> Vec<(RawFd, u32)>;

    /// A descriptor to wait on right now, or `None`; asked again after
    /// every batch of events, so a subscriber can stop the polling
    /// (backpressure: a NIC with no guest buffers leaves the tap unread)
    /// and resume it. Reported with the token [`DYNAMIC`].
    fn dynamic_fd(&self) -> Option<RawFd> {
        None
    }

    /// A descriptor to wait on for writability right now (a back-end that
    /// pushed back), asked as [`Subscriber::dynamic_fd`] is; reported with
    /// the token [`DYNAMIC_OUT`]. It must not be the dynamic descriptor
    /// itself (one descriptor is in an epoll set once): a duplicate of it.
    /// A subscriber never hands back the number of a descriptor it closed
    /// and opened again in between, which would keep a registration the
    /// kernel dropped with the old one.
    fn dynamic_out_fd(&self) -> Option<RawFd> {
        None
    }

    /// `token`'s descriptor is readable (level-triggered: a handler that
    /// leaves it readable is called again).
    fn handle(&mut self, token: u32);

    /// Whether the subscriber is done for good (a device unplugged): it is
    /// not called again, and is taken out of the loop (its descriptors
    /// unwatched, the subscriber dropped) at the next
    /// [`EventLoop::wake`].
    fn retired(&self) -> bool {
        false
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Run,
    Pause,
    Exit,
}

struct LoopState {
    wanted: Wanted,
    /// The thread is parked (runs no subscriber) until `wanted` changes.
    parked: bool,
}

struct Control {
    state: Mutex<LoopState>,
    changed: Condvar,
    wake: EventFd,
    /// Subscribers added while the loop runs ([`EventLoop::add`]).
    joining: Mutex<Vec<Box<dyn Subscriber>>>,
}

/// The epoll token of the control eventfd; a subscriber's descriptors use
/// `index << 32 | token`.
const WAKE: u64 = u64::MAX;

fn epoll_token(index: usize, token: u32) -> u64 {
    ((index as u64) << 32) | u64::from(token)
}

/// The thread serving the subscribers of one boot. Dropping it stops and
/// joins the thread.
pub(crate) struct EventLoop {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl EventLoop {
    /// Starts the thread (named `name`) over `subscribers`, parked if
    /// `paused`.
    pub(crate) fn start(
        name: &str,
        subscribers: Vec<Box<dyn Subscriber>>,
        paused: bool,
    ) -> io::Result<Self> {
        let control = Arc::new(Control {
            state: Mutex::new(LoopState {
                wanted: if paused { Wanted::Pause } else { Wanted::Run },
                parked: false,
            }),
            changed: Condvar::new(),
            wake: EventFd::new(EFD_NONBLOCK)?,
            joining: Mutex::new(Vec::new()),
        });
        let epoll = Epoll::new()?;
        let add = |fd: RawFd, token: u64| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
        };
        add(control.wake.as_raw_fd(), WAKE)?;
        for (i, s) in subscribers.iter().enumerate() {
            for (fd, token) in s.fixed_fds() {
                add(fd, epoll_token(i, token))?;
            }
        }
        let c = control.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                crate::sandbox::enter(crate::sandbox::Kind::Devices);
                serve(&c, &epoll, Subscribers::new(subscribers))
            })?;
        Ok(EventLoop {
            control,
            thread: Some(thread),
        })
    }

    fn set(&self, wanted: Wanted) {
        lock(&self.control.state).wanted = wanted;
        self.control.changed.notify_all();
        if let Err(e) = self.control.wake.write(1) {
            tracing::warn!("failed to wake the event loop: {e}");
        }
    }

    /// Stops the work; returns once no subscriber runs and none will until
    /// [`EventLoop::resume`].
    pub(crate) fn pause(&self) {
        self.set(Wanted::Pause);
        let mut st = lock(&self.control.state);
        while !st.parked && st.wanted == Wanted::Pause {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return;
            }
            st = self
                .control
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Lets the work go on; events that came while paused are served now.
    pub(crate) fn resume(&self) {
        self.set(Wanted::Run);
    }

    /// Adds a subscriber (a device hot-plugged); it is served from the
    /// loop's next wakeup on (at once if the loop runs, at the resume if
    /// it is paused).
    pub(crate) fn add(&self, subscriber: Box<dyn Subscriber>) {
        lock(&self.control.joining).push(subscriber);
        self.wake();
    }

    /// Wakes the loop so that it takes in added subscribers and drops
    /// retired ones.
    pub(crate) fn wake(&self) {
        if let Err(e) = self.control.wake.write(1) {
            tracing::warn!("failed to wake the event loop: {e}");
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.set(Wanted::Exit);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the device event loop panicked");
            }
        }
    }
}

/// Applies the wanted state; returns false when the thread must exit.
fn obey(control: &Control) -> bool {
    let mut st = lock(&control.state);
    loop {
        match st.wanted {
            Wanted::Run => {
                st.parked = false;
                return true;
            }
            Wanted::Exit => return false,
            Wanted::Pause => {
                st.parked = true;
                control.changed.notify_all();
                st = control.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

/// The subscribers with the dynamic descriptors each has in the epoll
/// set: for reading, and for writing.
struct Subscribers {
    /// By index (the epoll token's high half); a retired subscriber
    /// leaves `None`, so the others keep their tokens.
    all: Vec<Option<Box<dyn Subscriber>>>,
    armed: Vec<Option<RawFd>>,
    armed_out: Vec<Option<RawFd>>,
}

impl Subscribers {
    fn new(all: Vec<Box<dyn Subscriber>>) -> Self {
        let armed = vec![None; all.len()];
        let armed_out = vec![None; all.len()];
        Subscribers {
            all: all.into_iter().map(Some).collect(),
            armed,
            armed_out,
        }
    }

    /// How many events one wait may return: each subscriber's fixed and
    /// two dynamic descriptors, and the control eventfd.
    fn capacity(&self) -> usize {
        let fixed: usize = self.all.iter().flatten().map(|s| s.fixed_fds().len()).sum();
        fixed + 2 * self.all.len() + 1
    }

    /// Takes in the subscribers added since the last call, and takes out
    /// those retired: their descriptors leave the epoll set and the
    /// subscribers are dropped here, on the loop's thread.
    fn join_and_reap(&mut self, epoll: &Epoll, control: &Control) {
        for (i, slot) in self.all.iter_mut().enumerate() {
            if !slot.as_ref().is_some_and(|s| s.retired()) {
                continue;
            }
            if let Some(s) = slot.take() {
                for (fd, _) in s.fixed_fds() {
                    let _ = epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
                }
            }
            for armed in [&mut self.armed[i], &mut self.armed_out[i]] {
                if let Some(fd) = armed.take() {
                    let _ = epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
                }
            }
        }
        let joining = std::mem::take(&mut *lock(&control.joining));
        for s in joining {
            let i = self.all.len();
            for (fd, token) in s.fixed_fds() {
                let ev = EpollEvent::new(EventSet::IN, epoll_token(i, token));
                if let Err(e) = epoll.ctl(ControlOperation::Add, fd, ev) {
                    tracing::warn!("event loop: cannot watch a new device's fd {fd}: {e}");
                }
            }
            self.all.push(Some(s));
            self.armed.push(None);
            self.armed_out.push(None);
        }
    }

    /// Asks every subscriber what it wants polled now and updates the
    /// epoll set. Subscribers change their answer after a call into them
    /// (a device activates, resets, runs out of guest buffers), after
    /// which this runs.
    fn rearm(&mut self, epoll: &Epoll) {
        for (i, s) in self.all.iter().enumerate() {
            let Some(s) = s else { continue };
            let slot = &mut self.armed[i];
            rearm_one(
                epoll,
                slot,
                s.dynamic_fd(),
                EventSet::IN,
                epoll_token(i, DYNAMIC),
            );
            let slot = &mut self.armed_out[i];
            let token = epoll_token(i, DYNAMIC_OUT);
            rearm_one(epoll, slot, s.dynamic_out_fd(), EventSet::OUT, token);
        }
    }
}

/// Makes `slot` (what is in the epoll set) `want`.
fn rearm_one(
    epoll: &Epoll,
    slot: &mut Option<RawFd>,
    want: Option<RawFd>,
    events: EventSet,
    token: u64,
) {
    if want == *slot {
        return;
    }
    if let Some(old) = slot.take() {
        // Fails only if the descriptor was closed, which removed it.
        let _ = epoll.ctl(ControlOperation::Delete, old, EpollEvent::default());
    }
    if let Some(fd) = want {
        match epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(events, token)) {
            Ok(()) => *slot = Some(fd),
            Err(e) => tracing::warn!("event loop: cannot poll fd {fd}: {e}"),
        }
    }
}

/// Waits on every subscriber's descriptors and runs the subscriber whose
/// descriptor fired. Epoll is level-triggered, so events that arrive while
/// parked are seen after the resume.
fn serve(control: &Control, epoll: &Epoll, mut subs: Subscribers) {
    if !obey(control) {
        return;
    }
    subs.join_and_reap(epoll, control);
    subs.rearm(epoll);
    let mut events = vec![EpollEvent::default(); subs.capacity()];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("event loop: epoll failed: {e}");
                return;
            }
        };
        let mut grown = false;
        for ev in &events[..n] {
            let token = ev.data();
            if token == WAKE {
                // Consumed before reading the state, so a later change
                // wakes the loop again.
                let _ = control.wake.read();
                if !obey(control) {
                    return;
                }
                subs.join_and_reap(epoll, control);
                grown = true;
                continue;
            }
            // A pause that arrived during this batch must stop the work
            // now, not after the batch.
            if lock(&control.state).wanted != Wanted::Run {
                continue;
            }
            if let Some(Some(s)) = subs.all.get_mut((token >> 32) as usize) {
                if !s.retired() {
                    s.handle(token as u32);
                }
            }
        }
        subs.rearm(epoll);
        if grown {
            let want = subs.capacity();
            if events.len() < want {
                events.resize(want, EpollEvent::default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records which of its eventfds fired.
    struct Kicks {
        evts: Vec<EventFd>,
        calls: Arc<Mutex<Vec<u32>>>,
    }

    impl Subscriber for Kicks {
        fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
            (0..self.evts.len() as u32)
                .map(|i| (self.evts[i as usize].as_raw_fd(), i))
                .collect()
        }
        fn handle(&mut self, token: u32) {
            if self.evts[token as usize].read().is_ok() {
                lock(&self.calls).push(token);
            }
        }
    }

    const T: Duration = Duration::from_secs(10);

    /// A [`Kicks`] that can be retired.
    struct Retiring(Kicks, Arc<std::sync::atomic::AtomicBool>);

    impl Subscriber for Retiring {
        fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
            self.0.fixed_fds()
        }
        fn handle(&mut self, token: u32) {
            self.0.handle(token)
        }
        fn retired(&self) -> bool {
            self.1.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// A subscriber added to a running loop is served (after a resume if
    /// added while paused); once retired it is not called again and its
    /// descriptors are released by the loop.
    #[test]
    fn subscribers_join_and_retire_while_the_loop_runs() {
        let lp = EventLoop::start("test-devices", Vec::new(), true).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = evt.try_clone().unwrap();
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sub = Retiring(
            Kicks {
                evts: vec![evt],
                calls: calls.clone(),
            },
            gone.clone(),
        );
        lp.add(Box::new(sub));
        kick.write(1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(lock(&calls).is_empty(), "paused: nothing runs");
        lp.resume();
        wait_for(&calls, &[0]);
        gone.store(true, std::sync::atomic::Ordering::SeqCst);
        lp.wake();
        // The loop drops the subscriber: its eventfd (shared with `kick`)
        // is then only ours, and a kick reaches no one.
        kick.write(1).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(*lock(&calls), vec![0]);
        assert_eq!(kick.read().unwrap(), 1, "nobody read it");
    }

    fn wait_for(calls: &Arc<Mutex<Vec<u32>>>, want: &[u32]) {
        rvirt_testkit::wait_for(&format!("calls {want:?}"), T, || {
            lock(calls).as_slice() == want
        });
    }

    #[test]
    fn kicks_run_the_queue_and_pause_holds_them() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let evts: Vec<EventFd> = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let fds: Vec<EventFd> = evts.iter().map(|e| e.try_clone().unwrap()).collect();
        let sub = Kicks {
            evts,
            calls: calls.clone(),
        };
        // Started paused (as under -S): a kick waits for the resume.
        let lp = EventLoop::start("test-loop", vec![Box::new(sub)], true).unwrap();
        fds[1].write(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(lock(&calls).is_empty());
        lp.resume();
        wait_for(&calls, &[1]);
        fds[0].write(1).unwrap();
        wait_for(&calls, &[1, 0]);
        lp.pause();
        fds[0].write(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&calls).as_slice(), &[1, 0]);
        lp.resume();
        wait_for(&calls, &[1, 0, 0]);
        drop(lp);
    }

    /// A descriptor polled only while its subscriber wants it.
    struct Gated {
        evt: EventFd,
        want: Arc<Mutex<bool>>,
        calls: Arc<Mutex<Vec<u32>>>,
    }

    impl Subscriber for Gated {
        fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
            Vec::new()
        }
        fn dynamic_fd(&self) -> Option<RawFd> {
            lock(&self.want).then(|| self.evt.as_raw_fd())
        }
        fn handle(&mut self, token: u32) {
            // Not consumed: level-triggered, it would fire again unless the
            // subscriber stops asking for it.
            lock(&self.calls).push(token);
            *lock(&self.want) = false;
        }
    }

    /// Wants its socket's duplicate polled for writability until called.
    struct Blocked {
        out: std::os::fd::OwnedFd,
        want: Arc<Mutex<bool>>,
        calls: Arc<Mutex<Vec<u32>>>,
    }

    impl Subscriber for Blocked {
        fn fixed_fds(&self) -> Vec<(RawFd, u32)> {
            Vec::new()
        }
        fn dynamic_out_fd(&self) -> Option<RawFd> {
            lock(&self.want).then(|| self.out.as_raw_fd())
        }
        fn handle(&mut self, token: u32) {
            lock(&self.calls).push(token);
            *lock(&self.want) = false;
        }
    }

    #[test]
    fn a_writable_descriptor_is_reported_as_such() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let want = Arc::new(Mutex::new(true));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sub = Blocked {
            out: a.into(),
            want: want.clone(),
            calls: calls.clone(),
        };
        let lp = EventLoop::start("test-loop", vec![Box::new(sub)], false).unwrap();
        // An empty socket is writable at once.
        wait_for(&calls, &[DYNAMIC_OUT]);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&calls).as_slice(), &[DYNAMIC_OUT], "no longer polled");
        drop(lp);
    }

    #[test]
    fn a_dynamic_descriptor_is_polled_only_while_wanted() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let want = Arc::new(Mutex::new(true));
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        evt.write(1).unwrap();
        let sub = Gated {
            evt,
            want: want.clone(),
            calls: calls.clone(),
        };
        let lp = EventLoop::start("test-loop", vec![Box::new(sub)], false).unwrap();
        wait_for(&calls, &[DYNAMIC]);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock(&calls).as_slice(), &[DYNAMIC], "no longer polled");
        drop(lp);
    }
}
