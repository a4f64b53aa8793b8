//! The guest's first serial port, when it is a pty, read by rvirtd for
//! as long as the VM runs: every byte goes to the domain log, and to the
//! console stream when a client has one open. So the log tells what the
//! guest printed whether or not anyone watched, and a console opened
//! late still finds the whole history in the log.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_domain::Domain;

use super::console::Console;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running VM's serial0 reader.
#[derive(Default)]
pub struct SerialReader {
    /// The console stream the output also goes to, and whether the pty
    /// has ended: one lock, so a console attached as the pty ends is
    /// either refused or ended, never left waiting.
    state: Mutex<ReaderState>,
}

#[derive(Default)]
struct ReaderState {
    console: Option<Arc<Console>>,
    ended: bool,
}

impl SerialReader {
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
pub type ReaderTable = Mutex<HashMap<String, Arc<SerialReader>>>;

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
pub fn start(readers: &Arc<ReaderTable>, name: &str, pty: &Path, log: &Path) {
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
    let reader = Arc::new(SerialReader::default());
    lock(readers).insert(name.to_string(), reader.clone());
    let (readers2, name2, reader2) = (readers.clone(), name.to_string(), reader.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("serial-{name}"))
        .spawn(move || {
            run(&reader2, &file, log);
            finish(&readers2, &name2, &reader2);
        });
    if let Err(e) = spawned {
        tracing::error!(domain = name, error = %e, "cannot start the serial log thread");
        finish(readers, name, &reader);
    }
}

/// The pty is gone: the attached console sees its end, and the table
/// forgets this reader (a restarted VM has a new one under the same name).
fn finish(readers: &ReaderTable, name: &str, reader: &Arc<SerialReader>) {
    let console = {
        let mut st = lock(&reader.state);
        st.ended = true;
        st.console.take()
    };
    if let Some(c) = console {
        c.end_of_file();
    }
    let mut t = lock(readers);
    if t.get(name).is_some_and(|x| Arc::ptr_eq(x, reader)) {
        t.remove(name);
    }
}

/// Reads until the VMM closes the pty (read fails with EIO).
fn run(reader: &SerialReader, pty: &File, mut log: File) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if crate::sys::wait_readable(pty, None).is_err() {
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
        let mut st = lock(&reader.state);
        if let Some(c) = st.console.as_ref() {
            // An ended console (closed, taken over, client gone) is
            // dropped; the output still reaches the log.
            if !c.forward(&buf[..n]) {
                st.console = None;
            }
        }
    }
}
