//! Serial consoles through the daemon (DOMAIN_OPEN_CONSOLE, `virsh
//! console`): the VMM's pty for the serial port, found with QMP
//! `query-chardev`, pumped to the client as STREAM messages; the
//! client's STREAM messages are written back to it. One console per
//! domain at a time; VIR_DOMAIN_CONSOLE_FORCE takes it over.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_remote::calls::DomainOpenConsoleArgs;
use rvirt_remote::consts::VIR_DOMAIN_CONSOLE_FORCE;
use rvirt_remote::error::{code, from};
use rvirt_remote::server::{stream_data, stream_eof, stream_error, stream_finish};
use rvirt_remote::{MessageStatus, Procedure, RemoteError};

use super::DomainDriver;
use crate::server::outbox::Outbox;
use crate::server::streams::{ClientStream, Streams};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open console stream.
///
/// Its end is sent exactly once, by whoever ends it first: the VMM's pty
/// closing, the domain stopping, the client finishing it, or another
/// client taking it over. Every message of the stream is sent under
/// `open`, so no data can follow the end and no end can be lost between a
/// check and a send (the VM stopping used to mark the console stopped
/// without an end, and the pty's EOF then found it stopped and sent none).
pub struct Console {
    serial: u32,
    pty: File,
    outbox: Arc<Outbox>,
    /// False once the stream has ended.
    open: Mutex<bool>,
}

/// How a console stream ends.
enum End {
    /// The guest side is gone (pty closed, domain stopped): libvirt's
    /// empty CONTINUE message.
    Eof,
    /// Another client took it over with FORCE.
    TakenOver,
    /// The client is gone: nothing to send.
    Silent,
}

impl Console {
    fn proc_() -> i32 {
        Procedure::DomainOpenConsole.number()
    }

    /// Ends the stream with `how` unless it already ended.
    fn end(&self, how: End) {
        let mut open = lock(&self.open);
        if !*open {
            return;
        }
        *open = false;
        let (p, s) = (Console::proc_(), self.serial);
        match how {
            End::Eof => self.outbox.send(&stream_eof(p, s)),
            End::TakenOver => self.outbox.send(&stream_error(p, s, &forced_off())),
            End::Silent => true,
        };
    }

    /// The client finished or aborted the stream: confirmed with a finish
    /// whether or not it had already ended (after an EOF the client
    /// finishes, and waits for this).
    fn finished(&self) {
        let mut open = lock(&self.open);
        *open = false;
        self.outbox
            .send(&stream_finish(Console::proc_(), self.serial));
    }

    /// The client went away.
    pub fn stop(&self) {
        self.end(End::Silent);
    }

    fn is_stopped(&self) -> bool {
        !*lock(&self.open) || self.outbox.is_closed()
    }

    /// Guest output for the client; false once the stream has ended.
    pub fn forward(&self, data: &[u8]) -> bool {
        let open = lock(&self.open);
        *open
            && self
                .outbox
                .send(&stream_data(Console::proc_(), self.serial, data))
    }

    /// The guest side is gone (the VMM closed the pty, or the domain
    /// stopped): the client's stream ends.
    pub fn end_of_file(&self) {
        self.end(End::Eof);
    }
}

/// Domain name -> its console.
pub type ConsoleTable = Mutex<HashMap<String, Arc<Console>>>;

impl ClientStream for Console {
    fn data(&self, data: &[u8]) {
        if (&self.pty).write_all(data).is_err() {
            tracing::debug!("console write failed");
        }
    }

    fn end(&self, _status: MessageStatus) {
        self.finished();
    }

    fn stop(&self) {
        Console::stop(self);
    }
}

impl DomainDriver {
    /// DOMAIN_OPEN_CONSOLE; on success the caller sends the reply, then
    /// the pump starts sending the guest's output.
    pub fn open_console(
        &self,
        streams: &Streams,
        outbox: &Arc<Outbox>,
        serial: u32,
        a: &DomainOpenConsoleArgs,
    ) -> Result<impl FnOnce() + use<>, RemoteError> {
        let (name, run) = {
            let reg = self.reg();
            let e = reg.resolve(&a.dom)?;
            let run = e
                .run
                .clone()
                .ok_or_else(|| RemoteError::operation_invalid("domain is not running"))?;
            (e.name.clone(), run)
        };
        let alias = a.dev_name.clone().unwrap_or_else(|| "serial0".into());
        let not_found = || {
            RemoteError::new(
                code::INTERNAL_ERROR,
                from::QEMU,
                Some(&format!("cannot find character device {alias}")),
            )
        };
        // The chardev ids derivation gives: `charserialN` for serial ports,
        // `charconsoleN` for virtio consoles. As libvirt: no name means the
        // first console, which is serial0's mirror when there is a serial
        // port, else the first virtio console; `consoleN` is a virtio
        // console or a serial port's console mirror.
        let number = |prefix: &str| {
            alias
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok())
        };
        let labels = if a.dev_name.is_none() {
            vec!["charserial0".to_string(), "charconsole0".to_string()]
        } else if let Some(n) = number("serial") {
            vec![format!("charserial{n}")]
        } else if let Some(n) = number("console") {
            vec![format!("charconsole{n}"), format!("charserial{n}")]
        } else {
            return Err(not_found());
        };
        let chardevs = run.qmp.query_chardev().map_err(|e| {
            RemoteError::operation_failed(&format!("query-chardev: {}", crate::error_chain(&e)))
        })?;
        let (label, filename) = labels
            .iter()
            .find_map(|label| {
                chardevs
                    .iter()
                    .find(|c| &c.label == label)
                    .map(|c| (label.clone(), c.filename.clone()))
            })
            .ok_or_else(not_found)?;
        let path = filename.strip_prefix("pty:").ok_or_else(|| {
            RemoteError::new(
                code::OPERATION_UNSUPPORTED,
                from::QEMU,
                Some(&format!("character device {alias} is not using a PTY")),
            )
        })?;
        let pty = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .map_err(|e| RemoteError::operation_failed(&format!("cannot open {path}: {e}")))?;
        let console = Arc::new(Console {
            serial,
            pty,
            outbox: outbox.clone(),
            open: Mutex::new(true),
        });
        {
            let mut table = lock(&self.consoles);
            if let Some(old) = table.get(&name) {
                if !old.is_stopped() {
                    if a.flags & VIR_DOMAIN_CONSOLE_FORCE == 0 {
                        return Err(RemoteError::operation_failed(
                            "Active console session exists for this domain",
                        ));
                    }
                    old.end(End::TakenOver);
                }
            }
            table.insert(name.clone(), console.clone());
        }
        streams.add(serial, console.clone());
        // serial0's output is already read by its serial-log reader: the
        // console takes its share from there rather than racing it for the
        // bytes.
        let reader = (label == "charserial0")
            .then(|| lock(&self.serial_readers).get(&name).cloned())
            .flatten();
        let attached = reader.is_some_and(|r| r.attach(console.clone()));
        Ok(move || {
            if attached {
                return;
            }
            let spawned = std::thread::Builder::new()
                .name(format!("console-{name}"))
                .spawn(move || pump(&console));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a console thread");
            }
        })
    }
}

/// What the client of a console taken over with FORCE sees.
fn forced_off() -> RemoteError {
    RemoteError::new(
        code::OPERATION_ABORTED,
        from::STREAMS,
        Some("console has been forcibly closed by another client"),
    )
}

/// Guest output -> client, until the pty closes (the VMM exited), the
/// client closes the stream, or the client goes away.
fn pump(c: &Console) {
    let mut buf = vec![0u8; 64 * 1024];
    while !c.is_stopped() {
        // The timeout only bounds how late a stop is noticed.
        match crate::sys::wait_readable(&c.pty, Some(std::time::Duration::from_millis(200))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => {
                c.end_of_file();
                return;
            }
        }
        match (&c.pty).read(&mut buf) {
            Ok(n) if n > 0 => {
                if !c.forward(&buf[..n]) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => {
                c.end_of_file();
                return;
            }
        }
    }
}
