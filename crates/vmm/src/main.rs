//! rvirt-vmm: one process per VM, with QEMU's command line.
//!
//! The boot path is [`rvirt_vmm::Vmm::new`], then [`rvirt_vmm::Vmm::start`]
//! (which boots through `Vmm::boot`), then `Vmm::run`; the vCPU run loop is
//! `rvirt_machine::vcpu`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rvirt_vmm::sandbox::{self, Kind, Prepared};
use rvirt_vmm::{error_chain, prefork_teardown, say, Event, Exit, Vmm};
use rvirt_vmm_config::{parse, usage, Action, VmConfig};

const NAME: &str = "rvirt-vmm";

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    say(format_args!("{NAME}: {msg}"));
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(Action::Run(c)) => *c,
        Ok(Action::Version) => {
            let _ = writeln!(
                std::io::stdout(),
                "{NAME} version {}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Ok(Action::Help) => {
            let _ = write!(std::io::stdout(), "{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(e),
    };
    if let Err(e) = init_logging(config.logfile.as_deref()) {
        return fail(format_args!("-D: {e}"));
    }
    let mut daemon = None;
    if config.daemonize {
        match daemonize() {
            Ok(d) => daemon = Some(d),
            Err(e) => return fail(format_args!("-daemonize: {e}")),
        }
    }
    // The filters are built (and the -runas user looked up) before
    // anything is confined; the teardown child is forked from this one
    // thread, holding nothing; then the whole process is confined before
    // anything the command line names is opened.
    let prepared = match sandbox::prepare(&config) {
        Ok(p) => p,
        Err(e) => return fail(format_args!("-sandbox: {}", error_chain(&e))),
    };
    if prepared.is_on() {
        prefork_teardown();
    }
    if let Err(e) = prepared.confine(&config) {
        return fail(format_args!("-sandbox: {}", error_chain(&e)));
    }
    #[cfg(any(feature = "sandbox-probe", debug_assertions))]
    let probe = sandbox::probe::arm(config.name.as_deref());
    #[cfg(not(any(feature = "sandbox-probe", debug_assertions)))]
    let probe = false;
    // Block the termination signals in every thread before any is created;
    // one thread takes them with sigwait and tells the main loop.
    let signals = match block_signals(probe) {
        Ok(s) => s,
        Err(e) => return fail(format_args!("failed to set up signals: {e}")),
    };
    let code = run(config, signals, daemon.as_mut(), prepared);
    if let Some(d) = daemon {
        d.finish(code == ExitCode::SUCCESS);
    }
    code
}

fn run(
    config: VmConfig,
    signals: libc::sigset_t,
    daemon: Option<&mut Daemon>,
    prepared: Prepared,
) -> ExitCode {
    let pidfile = config.pidfile.clone();
    let mut vmm = match Vmm::new(config) {
        Ok(v) => v,
        Err(e) => return fail(error_chain(&e)),
    };
    if let Some(path) = &pidfile {
        if let Err(e) = write_pidfile(path) {
            return fail(format_args!(
                "-pidfile: could not write '{}': {e}",
                path.display()
            ));
        }
    }
    if let Err(e) = vmm.start() {
        if let Some(path) = &pidfile {
            let _ = std::fs::remove_file(path);
        }
        return fail(error_chain(&e));
    }
    // Everything is open: drop to the -runas user, then narrow the main
    // thread to what the running VM needs.
    if let Some(user) = &prepared.user {
        if let Err(e) = user.become_user() {
            return fail(format_args!("-runas: {}", error_chain(&e)));
        }
    }
    sandbox::enter(Kind::Main);
    // The signal thread starts after the guest does: the signals are
    // blocked until then and wait as pending, and the guest's first
    // instructions need not wait for one more thread creation.
    let sender = vmm.event_sender();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            sandbox::enter(Kind::Signals);
            loop {
                let mut sig = 0;
                // SAFETY: `signals` is an initialised set and `sig` a valid
                // out pointer; sigwait only reads the one and writes the
                // other.
                if unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
                    #[cfg(any(feature = "sandbox-probe", debug_assertions))]
                    if sig == libc::SIGUSR1 {
                        sender.post(Event::Probe);
                        continue;
                    }
                    sender.post(Event::Signal(sig));
                }
            }
        });
    if let Err(e) = spawned {
        return fail(format_args!("failed to start the signal thread: {e}"));
    }
    if let Some(d) = daemon {
        d.ready();
    }
    let result = vmm.run();
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(Exit::GuestShutdown | Exit::Quit) => ExitCode::SUCCESS,
        Ok(Exit::Signal(sig)) => {
            // QEMU's message for the same event.
            say(format_args!("{NAME}: terminating on signal {sig}"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(error_chain(&e)),
    }
}

/// Logs go to `-D FILE` or stderr, filtered by RVIRT_LOG in tracing's
/// EnvFilter syntax as every rvirt program reads it (default warn).
fn init_logging(file: Option<&Path>) -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RVIRT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Blocks SIGTERM, SIGINT and SIGHUP (and SIGUSR1 for an armed probe).
fn block_signals(probe: bool) -> std::io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use;
    // pthread_sigmask only changes this thread's mask (inherited by threads
    // created later).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        if probe {
            libc::sigaddset(&mut set, libc::SIGUSR1);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

fn write_pidfile(path: &PathBuf) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    let mut f = File::create(&tmp)?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The daemon child's link to the parent that waits for it.
struct Daemon {
    pipe: Option<File>,
}

impl Daemon {
    /// Start-up succeeded: release the parent and detach from the terminal.
    fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(&[0]);
        }
        if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors; /dev/null is
                // open for the duration of the call.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
    }

    /// Start-up failed (or ended before `ready`): tell the parent.
    fn finish(mut self, ok: bool) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(&[if ok { 0 } else { 1 }]);
        }
    }
}

/// Forks: the parent waits until the child is set up (or fails) and exits
/// with its status, as QEMU's -daemonize does, so the caller knows the VM
/// started.
fn daemonize() -> std::io::Result<Daemon> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (mut rd, wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (called before any is spawned), so
    // the child is a consistent copy.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(rd);
            // SAFETY: setsid in the new child; failure leaves it in the
            // parent's session, which is harmless.
            unsafe { libc::setsid() };
            Ok(Daemon { pipe: Some(wr) })
        }
        _ => {
            drop(wr);
            let mut status = [1u8];
            let ok = rd.read_exact(&mut status).is_ok() && status[0] == 0;
            std::process::exit(if ok { 0 } else { 1 });
        }
    }
}
