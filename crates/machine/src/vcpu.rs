//! The vCPU threads and their run loop.
//!
//! Each vCPU runs on its own host thread as a small state machine driven by
//! a shared control block: `Run` (enter the guest, dispatch exits to the
//! buses), `Pause` (park on a condition variable) and `Exit` (leave the
//! thread). The controller changes the wanted state and then kicks every
//! thread with a signal, which makes a blocking KVM_RUN return EINTR; it
//! repeats the kick until every thread has acknowledged, so a kick that lands
//! just before a thread enters KVM_RUN is never lost. Work that must run on
//! a vCPU's own thread (KVM's vCPU ioctls; an NMI) is asked for the same
//! way: a flag in the control block, kicks until the thread has taken it.
//!
//! Lock order: the control mutex is never held while running the guest or
//! while touching a device; a thread holds it while it makes its own
//! non-blocking vCPU ioctls (an NMI), so the asker sees them done.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuExit, VcpuFd};
use rvirt_bus::Bus;
use rvirt_platform::{VmControl, VmRequest};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::topology::Topology;

/// Where the vCPU threads report what the machine must act on.
pub trait VcpuEvents: VmControl {
    /// vCPU `cpu` hit an error it cannot continue from (failed entry, KVM
    /// internal error); `report` holds the registers for the log.
    fn vcpu_failed(&self, cpu: u32, report: String);

    /// Whether the guest has asked for the machine to stop (reset, power
    /// off, panic). A vCPU then runs no further guest instruction, as on
    /// hardware, and waits for the machine to be torn down.
    fn stop_requested(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Run,
    Pause,
    Exit,
}

struct State {
    want: Want,
    /// Threads parked in `Pause` or finished.
    idle: usize,
    /// Per vCPU: an external NMI asked for and not yet taken by its thread.
    nmi: Vec<bool>,
}

struct Control {
    state: Mutex<State>,
    changed: Condvar,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// KVM system event types (struct kvm_run.system_event.type).
const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;
const KVM_SYSTEM_EVENT_CRASH: u32 = 3;

/// How long `inject_nmi` waits for the threads to take the NMI. A thread
/// takes it between two guest exits, so only a vCPU stuck in a device (a
/// bug elsewhere) is this slow; its NMI then waits for its next exit.
const NMI_WAIT: Duration = Duration::from_secs(5);

/// The signal that kicks a vCPU out of KVM_RUN.
fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn handle_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

/// The host thread IDs of a set of vCPU threads, filled in as they start.
#[derive(Clone)]
pub struct ThreadIds(Arc<Vec<AtomicI32>>);

impl ThreadIds {
    /// The IDs now; 0 for a thread that has not started yet.
    pub fn read(&self) -> Vec<i32> {
        self.0.iter().map(|t| t.load(Ordering::Acquire)).collect()
    }
}

/// The running vCPU threads.
pub struct Vcpus {
    control: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
    tids: Arc<Vec<AtomicI32>>,
    topology: Topology,
    // Keeps guest memory mapped while any vCPU can still enter the guest.
    _memory: GuestMemoryMmap,
}

/// What a vCPU thread needs.
struct Worker {
    cpu: u32,
    fd: VcpuFd,
    control: Arc<Control>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    events: Arc<dyn VcpuEvents>,
    tids: Arc<Vec<AtomicI32>>,
}

impl Vcpus {
    // Crate-private, called once from Machine::start: each argument is one
    // input of the run loop.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        fds: Vec<VcpuFd>,
        topology: Topology,
        memory: GuestMemoryMmap,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        events: Arc<dyn VcpuEvents>,
        paused: bool,
        on_start: Option<fn()>,
    ) -> std::io::Result<Vcpus> {
        register_signal_handler(kick_signal(), handle_kick).map_err(std::io::Error::other)?;
        let control = Arc::new(Control {
            state: Mutex::new(State {
                want: if paused { Want::Pause } else { Want::Run },
                idle: 0,
                nmi: vec![false; fds.len()],
            }),
            changed: Condvar::new(),
        });
        let tids: Arc<Vec<AtomicI32>> = Arc::new(fds.iter().map(|_| AtomicI32::new(0)).collect());
        let mut vcpus = Vcpus {
            control: control.clone(),
            threads: Vec::with_capacity(fds.len()),
            tids: tids.clone(),
            topology,
            _memory: memory,
        };
        for (cpu, fd) in fds.into_iter().enumerate() {
            let worker = Worker {
                cpu: cpu as u32,
                fd,
                control: control.clone(),
                pio: pio.clone(),
                mmio: mmio.clone(),
                events: events.clone(),
                tids: tids.clone(),
            };
            let handle = std::thread::Builder::new()
                // QEMU's name for vCPU threads (with debug-threads=on).
                .name(format!("CPU {cpu}/KVM"))
                .spawn(move || {
                    if let Some(hook) = on_start {
                        hook();
                    }
                    worker.run()
                })?;
            vcpus.threads.push(handle);
        }
        Ok(vcpus)
    }

    /// The topology the vCPUs were built with.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The host thread IDs of the vCPU threads (0 until a thread has
    /// started), as a shared view readable after `self` is gone
    /// (entries of stopped threads keep their last value).
    pub fn thread_id_cells(&self) -> ThreadIds {
        ThreadIds(self.tids.clone())
    }

    fn set(&self, want: Want) {
        let mut s = self.control.lock();
        s.want = want;
        self.control.changed.notify_all();
    }

    /// Kicks every thread until all are idle (parked or finished).
    fn wait_idle(&self) {
        let mut s = self.control.lock();
        while s.idle < self.threads.len() {
            drop(s);
            for t in &self.threads {
                if !t.is_finished() {
                    // A failed kick means the thread is already gone.
                    let _ = t.kill(kick_signal());
                }
            }
            s = self.control.lock();
            if s.idle < self.threads.len() {
                s = self
                    .control
                    .changed
                    .wait_timeout(s, Duration::from_millis(1))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }

    /// An external NMI to every vCPU, as QEMU's `inject-nmi` on x86: each
    /// thread asks KVM for it (KVM_NMI is a vCPU ioctl, made on the vCPU's
    /// own thread) if its local APIC takes NMIs on LINT1, as QEMU checks.
    /// Returns once every thread has taken it (a paused vCPU takes it
    /// parked; the guest sees it when it runs again).
    pub fn inject_nmi(&self) {
        let mut s = self.control.lock();
        s.nmi.iter_mut().for_each(|p| *p = true);
        // Parked threads take it where they park.
        self.control.changed.notify_all();
        let deadline = Instant::now() + NMI_WAIT;
        loop {
            for (cpu, t) in self.threads.iter().enumerate() {
                if t.is_finished() {
                    s.nmi[cpu] = false;
                }
            }
            let pending: Vec<usize> = (0..s.nmi.len()).filter(|&c| s.nmi[c]).collect();
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    ?pending,
                    "vCPUs slow to take an NMI; it waits for their next exit"
                );
                return;
            }
            drop(s);
            for cpu in pending {
                // A failed kick means the thread is already gone.
                let _ = self.threads[cpu].kill(kick_signal());
            }
            s = self.control.lock();
            s = self
                .control
                .changed
                .wait_timeout(s, Duration::from_millis(1))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Stops every vCPU; returns when none executes guest code.
    pub fn pause(&self) {
        self.set(Want::Pause);
        self.wait_idle();
    }

    /// Lets the vCPUs run.
    pub fn resume(&self) {
        self.set(Want::Run);
    }

    /// Stops and joins every vCPU thread.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.set(Want::Exit);
        self.wait_idle();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Vcpus {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
        }
    }
}

impl Worker {
    fn run(mut self) {
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        self.tids[self.cpu as usize].store(tid, Ordering::Release);
        loop {
            if !self.wait_for_run() {
                break;
            }
            if !self.run_once() {
                break;
            }
            if self.events.stop_requested() {
                self.wait_for_exit();
                break;
            }
        }
        let mut s = self.control.lock();
        s.idle += 1;
        self.control.changed.notify_all();
    }

    /// Parks while paused, taking what is asked of this vCPU meanwhile.
    /// Returns false when the thread must exit.
    fn wait_for_run(&self) -> bool {
        let mut s = self.control.lock();
        loop {
            self.take_nmi(&mut s);
            match s.want {
                Want::Run => return true,
                Want::Exit => return false,
                Want::Pause => {
                    s.idle += 1;
                    self.control.changed.notify_all();
                    s = self
                        .control
                        .changed
                        .wait(s)
                        .unwrap_or_else(|p| p.into_inner());
                    s.idle -= 1;
                }
            }
        }
    }

    /// Parks until the controller wants the threads to exit, whatever else
    /// it asks meanwhile: after a reset or power-off request the guest must
    /// not run again on this machine.
    fn wait_for_exit(&self) {
        let mut s = self.control.lock();
        s.idle += 1;
        self.control.changed.notify_all();
        while s.want != Want::Exit {
            // No guest instruction runs again here: an NMI is dropped.
            s.nmi[self.cpu as usize] = false;
            s = self
                .control
                .changed
                .wait(s)
                .unwrap_or_else(|p| p.into_inner());
        }
        s.idle -= 1;
    }

    /// Injects the NMI asked for, if any, when LINT1 takes NMIs (QEMU's
    /// `do_inject_external_nmi`). KVM only queues it: the guest takes it
    /// on its next entry.
    fn take_nmi(&self, s: &mut State) {
        let asked = &mut s.nmi[self.cpu as usize];
        if !std::mem::take(asked) {
            return;
        }
        self.control.changed.notify_all();
        match self.fd.get_lapic() {
            Ok(lapic) if crate::regs::lint1_takes_nmi(&lapic) => {
                if let Err(e) = self.fd.nmi() {
                    tracing::warn!(cpu = self.cpu, "KVM: injection failed, NMI lost: {e}");
                }
            }
            Ok(_) => tracing::debug!(cpu = self.cpu, "NMI not taken: LINT1 masked or not NMI"),
            Err(e) => tracing::warn!(cpu = self.cpu, "NMI lost: cannot read the local APIC: {e}"),
        }
    }

    /// The I/O exit just taken, element by element: a `rep ins`/`rep outs`
    /// is `count` accesses of `size` bytes to the same port (as QEMU's
    /// kvm_handle_io runs them), not one wide access.
    fn port_io(&mut self) {
        let run = self.fd.get_kvm_run();
        // SAFETY: run_once saw KVM_EXIT_IO for this exit, so `io` is the
        // union's live member (kvm-ioctls' run() reads it the same way).
        let io = unsafe { run.__bindgen_anon_1.io };
        let size = usize::from(io.size).max(1);
        let len = size * io.count as usize;
        let base = (run as *mut kvm_bindings::kvm_run).cast::<u8>();
        // SAFETY: the kernel puts the exit's data `data_offset` bytes into
        // the kvm_run mapping, `size * count` bytes long, inside the
        // mapping (kvm-ioctls' run() builds the same slice); the mapping
        // lives as long as the vCPU fd and nothing else refers to it here.
        let data =
            unsafe { std::slice::from_raw_parts_mut(base.add(io.data_offset as usize), len) };
        let port = u64::from(io.port);
        for element in data.chunks_mut(size) {
            if u32::from(io.direction) == kvm_bindings::KVM_EXIT_IO_IN {
                self.pio.read(port, element);
            } else {
                self.pio.write(port, element);
            }
        }
    }

    /// Enters the guest once and handles the exit. Returns false when the
    /// vCPU cannot go on.
    fn run_once(&mut self) -> bool {
        match self.fd.run() {
            // The slice kvm-ioctls gives holds every element of a string
            // instruction (`rep insw` on an IDE data port) without their
            // width: the exit is read from kvm_run instead, once the
            // exit's borrow ends.
            Ok(VcpuExit::IoIn(..) | VcpuExit::IoOut(..)) => self.port_io(),
            Ok(VcpuExit::MmioRead(addr, data)) => {
                self.mmio.read(addr, data);
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                self.mmio.write(addr, data);
            }
            // A triple fault: real hardware resets.
            Ok(VcpuExit::Shutdown) => self.events.request(VmRequest::Reset),
            Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => self.events.request(VmRequest::PowerOff),
                KVM_SYSTEM_EVENT_RESET => self.events.request(VmRequest::Reset),
                KVM_SYSTEM_EVENT_CRASH => self.events.request(VmRequest::Panic),
                other => tracing::debug!(cpu = self.cpu, other, "ignored system event"),
            },
            Ok(VcpuExit::FailEntry(reason, hw_cpu)) => {
                let report = format!(
                    "KVM entry failed, hardware error {reason:#x} (host CPU {hw_cpu})\n{}",
                    self.dump()
                );
                self.events.vcpu_failed(self.cpu, report);
                return false;
            }
            Ok(VcpuExit::InternalError) => {
                let report = format!("KVM internal error\n{}", self.dump());
                self.events.vcpu_failed(self.cpu, report);
                return false;
            }
            // With the in-kernel irqchip these do not reach userspace; if
            // one does, going round the loop again is the right answer.
            Ok(VcpuExit::Hlt | VcpuExit::IrqWindowOpen | VcpuExit::Intr) => {}
            Ok(other) => {
                let what = format!("{other:?}");
                let report = format!("unexpected KVM exit {what}\n{}", self.dump());
                self.events.vcpu_failed(self.cpu, report);
                return false;
            }
            // Kicked by the controller: go back and look at the wanted state.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => {
                let report = format!("KVM_RUN failed: {e}\n{}", self.dump());
                self.events.vcpu_failed(self.cpu, report);
                return false;
            }
        }
        true
    }

    /// The registers, formatted like QEMU's register dump.
    fn dump(&self) -> String {
        let (Ok(r), Ok(s)) = (self.fd.get_regs(), self.fd.get_sregs()) else {
            return "registers unavailable".into();
        };
        format!(
            "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n\
             RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n\
             R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n\
             R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n\
             RIP={:016x} RFL={:08x}\n\
             CS ={:04x} {:016x} {:08x} DS ={:04x} SS ={:04x}\n\
             CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:016x}",
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            r.rsi,
            r.rdi,
            r.rbp,
            r.rsp,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15,
            r.rip,
            r.rflags,
            s.cs.selector,
            s.cs.base,
            s.cs.limit,
            s.ds.selector,
            s.ss.selector,
            s.cr0,
            s.cr2,
            s.cr3,
            s.cr4,
            s.efer
        )
    }
}
