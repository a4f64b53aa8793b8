//! Volume upload and download over libvirt's streams
//! (STORAGE_VOL_UPLOAD, STORAGE_VOL_DOWNLOAD): the file's bytes as they
//! are (a qcow2 volume's image file, not its guest view), from `offset`
//! for `length` bytes (0: to the end), as libvirt's dir backend streams
//! them.
//!
//! Upload: the client's STREAM data is written as it arrives on the
//! connection's reader thread; its finish is confirmed once the data is
//! on disk. Download: a thread reads the file and queues it through the
//! outbox's paced bulk path, then the empty CONTINUE that marks the end;
//! the client's finish is confirmed. libvirt's sparse streams
//! (VIR_STORAGE_VOL_*_SPARSE_STREAM, STREAM_HOLE messages) are refused as
//! unsupported flags: every byte travels.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rvirt_remote::calls::StorageVolStreamArgs;
use rvirt_remote::error::{code, from};
use rvirt_remote::server::{stream_data, stream_eof, stream_error, stream_finish};
use rvirt_remote::types::NonnullStorageVol;
use rvirt_remote::{MessageStatus, Procedure, RemoteError};

use super::pools::os_text;
use super::{check_flags, system_error, StorageDriver};
use crate::server::outbox::Outbox;
use crate::server::router::Call;
use crate::server::streams::ClientStream;

/// Bytes per STREAM message: libvirtd's `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`.
const CHUNK: usize = 262_120;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An upload in progress.
struct Upload {
    serial: u32,
    outbox: Arc<Outbox>,
    /// The volume file at the write position; none once ended or failed.
    file: Mutex<Option<File>>,
    /// Bytes still accepted (`length`), or none for no limit.
    left: Mutex<Option<u64>>,
    driver: Arc<StorageDriver>,
    vol: NonnullStorageVol,
}

impl Upload {
    fn proc_() -> i32 {
        Procedure::StorageVolUpload.number()
    }

    fn fail(&self, e: RemoteError) {
        if lock(&self.file).take().is_some() {
            tracing::warn!(volume = %self.vol.name, error = %e, "upload failed");
            self.outbox
                .send(&stream_error(Upload::proc_(), self.serial, &e));
        }
    }
}

impl ClientStream for Upload {
    fn data(&self, data: &[u8]) {
        let result = {
            let mut f = lock(&self.file);
            let Some(file) = f.as_mut() else { return };
            let mut left = lock(&self.left);
            match *left {
                Some(n) if (data.len() as u64) > n => Err(RemoteError::new(
                    code::INVALID_ARG,
                    from::STREAMS,
                    Some("stream data beyond the requested length"),
                )),
                _ => {
                    if let Some(n) = left.as_mut() {
                        *n -= data.len() as u64;
                    }
                    file.write_all(data).map_err(|e| {
                        system_error(&format!(
                            "unable to write to '{}': {}",
                            self.vol.key,
                            os_text(&e)
                        ))
                    })
                }
            }
        };
        if let Err(e) = result {
            self.fail(e);
        }
    }

    fn end(&self, status: MessageStatus) {
        let file = lock(&self.file).take();
        let Some(file) = file else { return };
        if status != MessageStatus::Ok {
            self.outbox.send(&stream_error(
                Upload::proc_(),
                self.serial,
                &RemoteError::new(
                    code::RPC,
                    from::STREAMS,
                    Some("stream aborted at client request"),
                ),
            ));
            return;
        }
        if let Err(e) = file.sync_all() {
            self.outbox.send(&stream_error(
                Upload::proc_(),
                self.serial,
                &system_error(&format!(
                    "unable to write to '{}': {}",
                    self.vol.key,
                    os_text(&e)
                )),
            ));
            return;
        }
        drop(file);
        let _ = self.driver.reprobe(&self.vol);
        self.driver.update_sizes(&self.vol.pool);
        self.outbox
            .send(&stream_finish(Upload::proc_(), self.serial));
        tracing::info!(volume = %self.vol.name, "volume uploaded");
    }

    fn stop(&self) {
        lock(&self.file).take();
    }
}

/// A download in progress.
struct Download {
    serial: u32,
    outbox: Arc<Outbox>,
    /// Set when the client aborts or leaves: the reader stops.
    stopped: AtomicBool,
}

impl Download {
    fn proc_() -> i32 {
        Procedure::StorageVolDownload.number()
    }
}

impl ClientStream for Download {
    fn data(&self, _data: &[u8]) {
        // The client sends nothing on a download but its finish.
    }

    fn end(&self, status: MessageStatus) {
        self.stopped.store(true, Ordering::Relaxed);
        if status == MessageStatus::Ok {
            self.outbox
                .send(&stream_finish(Download::proc_(), self.serial));
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// The volume file, checked against `offset` and opened there.
fn open_at(
    driver: &StorageDriver,
    a: &StorageVolStreamArgs,
    write: bool,
) -> Result<File, RemoteError> {
    let path = driver.reg().resolve_vol(&a.vol)?.1.path.clone();
    let mut f = OpenOptions::new()
        .read(!write)
        .write(write)
        .open(&path)
        .map_err(|e| {
            system_error(&format!(
                "Unable to open '{}': {}",
                path.display(),
                os_text(&e)
            ))
        })?;
    f.seek(SeekFrom::Start(a.offset)).map_err(|e| {
        system_error(&format!(
            "Unable to seek {} to {}: {}",
            path.display(),
            a.offset,
            os_text(&e)
        ))
    })?;
    Ok(f)
}

impl StorageDriver {
    /// STORAGE_VOL_UPLOAD: the reply opens the stream.
    pub fn upload(
        self: &Arc<Self>,
        cx: &Call<'_>,
        a: &StorageVolStreamArgs,
    ) -> Result<(), RemoteError> {
        check_flags(a.flags, 0, "storageVolUpload")?;
        let file = open_at(self, a, true)?;
        let up = Arc::new(Upload {
            serial: cx.serial,
            outbox: cx.client.sub.outbox.clone(),
            file: Mutex::new(Some(file)),
            left: Mutex::new((a.length > 0).then_some(a.length)),
            driver: self.clone(),
            vol: a.vol.clone(),
        });
        cx.client.streams.add(cx.serial, up);
        Ok(())
    }

    /// STORAGE_VOL_DOWNLOAD: the reply opens the stream, then the data
    /// follows it.
    pub fn download(&self, cx: &Call<'_>, a: &StorageVolStreamArgs) -> Result<(), RemoteError> {
        check_flags(a.flags, 0, "storageVolDownload")?;
        let file = open_at(self, a, false)?;
        let down = Arc::new(Download {
            serial: cx.serial,
            outbox: cx.client.sub.outbox.clone(),
            stopped: AtomicBool::new(false),
        });
        cx.client.streams.add(cx.serial, down.clone());
        let length = a.length;
        let name = a.vol.name.clone();
        cx.after_reply(move || {
            let spawned = std::thread::Builder::new()
                .name("vol-download".into())
                .spawn(move || send_file(&down, file, length, &name));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a download thread");
            }
        });
        Ok(())
    }
}

/// Download's thread: the file, then the end of the stream.
fn send_file(d: &Download, mut file: File, length: u64, name: &str) {
    let p = Download::proc_();
    let mut buf = vec![0u8; CHUNK];
    let mut left = if length == 0 { u64::MAX } else { length };
    while left > 0 {
        if d.stopped.load(Ordering::Relaxed) {
            return;
        }
        let want = (left.min(CHUNK as u64)) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                d.outbox.send(&stream_error(
                    p,
                    d.serial,
                    &system_error(&format!("unable to read '{name}': {}", os_text(&e))),
                ));
                return;
            }
        };
        if !d.outbox.send_bulk(&stream_data(p, d.serial, &buf[..n])) {
            return;
        }
        left -= n as u64;
    }
    d.outbox.send_bulk(&stream_eof(p, d.serial));
    tracing::info!(volume = name, "volume downloaded");
}
