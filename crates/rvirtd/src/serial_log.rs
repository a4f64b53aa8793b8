//! The guest's first serial port, when it is a pty, read by rvirtd for
//! as long as the VM runs: every byte goes to the domain log, and to the
//! console stream when a client has one open. So the log tells what the
//! guest printed whether or not anyone watched, and a console opened
//! late still finds the whole history in the log.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_domain::Domain;

use crate::console::Console;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running VM's serial0 reader.
#[derive(Default)]
pub struct Tap {
    /// The console stream the output also goes to, and whether the pty
    /// has ended: one lock, so a console attached as the pty ends is
    /// either refused or ended, never left waiting.
    state: Mutex<TapState>,
}

#[derive(Default)]
struct TapState {
    console: Option<Arc<Console>>,
    ended: bool,
}

impl Tap {
    /// Sends the output to `c` from now on (replacing an earlier holder,
    /// which FORCE already stopped). False when the pty is gone.
    pub fn attach(&self, c: Arc<Console>) -> bool {
        let mut st = lock(&self.state);
        if st.ended {
            return false;
        }
        st.console = Some(c);
        true
    }
}

/// Domain name -> the reader of its serial0 pty.
pub type TapTable = Mutex<HashMap<String, Arc<Tap>>>;

/// The pty path of `live`'s serial0, when it is a pty rvirt-vmm opened.
pub fn serial0_pty(live: &Domain) -> Option<PathBuf> {
    let s = live.devices.serials.first()?;
    if s.dev_type != "pty" {
        return None;
    }
    s.source
        .as_ref()
        .and_then(|src| src.attr("path"))
        .map(PathBuf::from)
}

/// Starts reading `pty` into `log` for domain `name`.
pub fn start(taps: &Arc<TapTable>, name: &str, pty: &Path, log: &Path) {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(pty)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(domain = name, pty = %pty.display(), error = %e, "serial output not logged");
            return;
        }
    };
    let log = match OpenOptions::new().create(true).append(true).open(log) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(domain = name, error = %e, "cannot open the domain log for serial output");
            return;
        }
    };
    let tap = Arc::new(Tap::default());
    lock(taps).insert(name.to_string(), tap.clone());
    let (taps2, name2, tap2) = (taps.clone(), name.to_string(), tap.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("serial-{name}"))
        .spawn(move || {
            run(&tap2, &file, log);
            finish(&taps2, &name2, &tap2);
        });
    if let Err(e) = spawned {
        tracing::error!(domain = name, error = %e, "cannot start the serial log thread");
        finish(taps, name, &tap);
    }
}

/// The pty is gone: the attached console sees its end, and the table
/// forgets this tap (a restarted VM has a new one under the same name).
fn finish(taps: &TapTable, name: &str, tap: &Arc<Tap>) {
    let console = {
        let mut st = lock(&tap.state);
        st.ended = true;
        st.console.take()
    };
    if let Some(c) = console {
        c.end_of_file();
    }
    let mut t = lock(taps);
    if t.get(name).is_some_and(|x| Arc::ptr_eq(x, tap)) {
        t.remove(name);
    }
}

/// Reads until the VMM closes the pty (read fails with EIO).
fn run(tap: &Tap, pty: &File, mut log: File) {
    let mut buf = vec![0u8; 64 * 1024];
    let fd = pty.as_raw_fd();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd that lives across the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let n = match (&*pty).read(&mut buf) {
            Ok(n) if n > 0 => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return,
        };
        if let Err(e) = log.write_all(&buf[..n]) {
            tracing::debug!(error = %e, "domain log write failed");
        }
        let mut st = lock(&tap.state);
        if let Some(c) = st.console.as_ref() {
            // An ended console (closed, taken over, client gone) is
            // dropped; the output still reaches the log.
            if !c.forward(&buf[..n]) {
                st.console = None;
            }
        }
    }
}
