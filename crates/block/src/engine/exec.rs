//! Running one request to completion on the calling thread: the sync
//! engine, the worker pool's workers, and what io_uring gives back.

use std::borrow::Cow;
use std::io;

use crate::aligned::AlignedBuf;
use crate::backend::DiskBackend;
use crate::buf::{gather, scatter, slice, total_len, zero, IoBuf};
use crate::format::{Format, Mapping};
use crate::request::{Op, Range};

/// Bounce buffers never grow past this, so a 4 GiB request costs 128 KiB.
const CHUNK: usize = 128 * 1024;

/// Runs `op` against `format`; `durable` makes a write durable before it
/// completes (the disk has no volatile write cache).
pub(crate) fn run(
    format: &dyn Format,
    bounce: &mut AlignedBuf,
    op: &Op,
    durable: bool,
) -> io::Result<()> {
    match op {
        Op::Read { offset, bufs } => transfer(format, bounce, *offset, bufs, false, false),
        Op::Write { offset, bufs } => transfer(format, bounce, *offset, bufs, true, durable),
        Op::Flush => {
            format.flush()?;
            format.storage().flush()
        }
        Op::Discard(ranges) if format.zeroes_itself() => ranges
            .iter()
            .try_for_each(|r| format.discard(r.offset, r.len)),
        Op::Discard(ranges) => {
            each_extent(format, ranges, false, |s, host, len| s.discard(host, len))
        }
        Op::WriteZeroes(ranges) => {
            if format.zeroes_itself() {
                for r in ranges {
                    format.write_zeroes(r.offset, r.len)?;
                }
                if durable {
                    format.flush()?;
                }
            } else {
                each_extent(format, ranges, true, |s, host, len| {
                    s.write_zeroes(host, len)
                })?;
            }
            if durable {
                format.storage().flush()?;
            }
            Ok(())
        }
    }
}

/// Calls `f` on the host extent of every part of `ranges`; parts that
/// hold nothing (holes) are skipped.
fn each_extent(
    format: &dyn Format,
    ranges: &[Range],
    write: bool,
    f: impl Fn(&dyn DiskBackend, u64, u64) -> io::Result<()>,
) -> io::Result<()> {
    let storage = format.storage();
    for r in ranges {
        let mut done = 0;
        while done < r.len {
            let m = format.map(r.offset + done, r.len - done, write)?;
            let len = m.len().min(r.len - done);
            if len == 0 {
                return Err(no_progress());
            }
            match m {
                Mapping::Host { offset, .. } => f(&**storage, offset, len)?,
                Mapping::Zero { .. } => {}
                Mapping::Format { .. } => {
                    return Err(io::Error::other(
                        "the image format mapped a discard to itself",
                    ))
                }
            }
            done += len;
        }
    }
    Ok(())
}

fn no_progress() -> io::Error {
    io::Error::other("the image format mapped nothing")
}

/// Moves the data of a read or write at virtual `offset`, one mapped
/// extent at a time.
pub(crate) fn transfer(
    format: &dyn Format,
    bounce: &mut AlignedBuf,
    offset: u64,
    bufs: &[IoBuf],
    write: bool,
    durable: bool,
) -> io::Result<()> {
    let total = total_len(bufs);
    let storage = format.storage();
    let mut done = 0u64;
    while done < total {
        let m = format.map(offset + done, total - done, write)?;
        let len = m.len().min(total - done);
        if len == 0 {
            return Err(no_progress());
        }
        let part = if len == total {
            Cow::Borrowed(bufs)
        } else {
            Cow::Owned(slice(bufs, done as usize, len as usize))
        };
        match m {
            Mapping::Host { offset: host, .. } => {
                host_io(&**storage, bounce, &part, host, write, durable)?
            }
            Mapping::Zero { .. } if !write => zero(&part),
            Mapping::Zero { .. } => {
                return Err(io::Error::other(
                    "the image format mapped a write to a hole",
                ))
            }
            Mapping::Format { .. } => through_format(format, offset + done, &part, write, durable)?,
        }
        done += len;
    }
    Ok(())
}

/// Reads or writes `bufs` at virtual `offset` through the format itself
/// (allocation, a backing image, compressed data). The format works on
/// byte slices, and the block layer never makes a Rust reference to the
/// caller's memory (it may change under the I/O: `IoBuf`), so the bytes
/// go through a buffer of our own, a chunk at a time; this path is the
/// exception (a cluster's first write, data below an overlay), not the
/// steady state.
fn through_format(
    format: &dyn Format,
    offset: u64,
    bufs: &[IoBuf],
    write: bool,
    durable: bool,
) -> io::Result<()> {
    let total = total_len(bufs) as usize;
    let mut chunk = vec![0u8; total.min(CHUNK)];
    let mut at = 0;
    while at < total {
        let n = (total - at).min(CHUNK);
        let buf = &mut chunk[..n];
        let pos = offset + at as u64;
        if write {
            gather(bufs, at, buf);
            format.write(pos, buf, durable)?;
        } else {
            format.read(pos, buf)?;
            scatter(bufs, at, buf);
        }
        at += n;
    }
    Ok(())
}

/// Reads or writes `bufs` at `host` in the storage: straight from the
/// buffers when they meet its alignment (zero-copy), through the aligned
/// bounce buffer otherwise (O_DIRECT with unaligned buffers).
fn host_io(
    storage: &dyn DiskBackend,
    bounce: &mut AlignedBuf,
    bufs: &[IoBuf],
    host: u64,
    write: bool,
    durable: bool,
) -> io::Result<()> {
    if storage.alignment().fits(bufs) {
        return if write {
            storage.write_vectored_at(bufs, host, durable)
        } else {
            storage.read_vectored_at(bufs, host)
        };
    }
    // The buffers as one stream, in chunks: every chunk but the last is a
    // multiple of the page size, so the file offsets stay aligned.
    let total = total_len(bufs) as usize;
    let mut at = 0;
    while at < total {
        let n = (total - at).min(CHUNK);
        bounce.resize(n);
        let pos = host + at as u64;
        if write {
            gather(bufs, at, bounce.as_mut_slice());
            if durable {
                storage.write_at_durable(bounce.as_slice(), pos)?;
            } else {
                storage.write_at(bounce.as_slice(), pos)?;
            }
        } else {
            storage.read_at(bounce.as_mut_slice(), pos)?;
            scatter(bufs, at, bounce.as_slice());
        }
        at += n;
    }
    Ok(())
}
