//! What a commit job needs of the block layer: which ranges of an overlay
//! hold data of its own ([`Format::allocation`]), copying those into the
//! image below, and the log of the ranges a guest wrote while the copy
//! ran ([`WriteLog`]), which the caller copies again with the disk
//! settled before it switches the device to the image below.
//!
//! The copy runs on the caller's thread (a job thread, never a vCPU or
//! the device loop), through the formats directly: no engine.

use std::io;
use std::sync::{Arc, Mutex};

use crate::format::{Format, Mapping};
use crate::open::{open_host, OpenError, OpenOptions, PassedFiles};
use crate::qcow2::{Backing, ImageFormat, ImageSpec};

/// Bytes copied per step.
pub const COMMIT_CHUNK: u64 = 1 << 20;

/// The granule [`WriteLog`] records in: a guest's writes cost at most one
/// bit per 64 KiB of its disk (2 MiB for a 1 TiB disk), whatever their
/// pattern, and are copied again in whole granules.
pub const LOG_GRANULE: u64 = 64 * 1024;

/// The parts of a virtual disk written since the log was started, as a
/// bitmap of [`LOG_GRANULE`]s (its size bounded by the disk's, which the
/// device checks requests against).
#[derive(Debug, Default)]
pub struct WriteLog {
    bits: Mutex<Vec<u64>>,
}

impl WriteLog {
    /// Records `[offset, offset + len)`.
    pub fn mark(&self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = offset / LOG_GRANULE;
        let last = offset.saturating_add(len - 1) / LOG_GRANULE;
        let mut bits = self.bits.lock().unwrap_or_else(|p| p.into_inner());
        let words = usize::try_from(last / 64 + 1).unwrap_or(usize::MAX);
        if bits.len() < words {
            bits.resize(words, 0);
        }
        for g in first..=last {
            bits[(g / 64) as usize] |= 1 << (g % 64);
        }
    }

    /// The logged parts, in order, as (offset, len), adjacent granules
    /// joined.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let bits = self.bits.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (w, &word) in bits.iter().enumerate() {
            if word == 0 {
                continue;
            }
            for b in 0..64 {
                if word & (1 << b) == 0 {
                    continue;
                }
                let at = (w as u64 * 64 + b) * LOG_GRANULE;
                match out.last_mut() {
                    Some((s, l)) if *s + *l == at => *l += LOG_GRANULE,
                    _ => out.push((at, LOG_GRANULE)),
                }
            }
        }
        out
    }

    /// Bytes logged.
    pub fn bytes(&self) -> u64 {
        self.ranges().iter().map(|(_, l)| l).sum()
    }
}

/// Opens an image (with the chain `spec` names) as a bare format, for a
/// copy on the caller's thread.
pub fn open_format(
    spec: &ImageSpec,
    opts: &OpenOptions,
    passed: PassedFiles,
) -> Result<Arc<dyn Format>, OpenError> {
    let read_only = opts.read_only || spec.read_only;
    let opts = OpenOptions { read_only, ..*opts };
    Ok(match spec.format {
        ImageFormat::Raw => {
            if let Backing::Image(_) = spec.backing {
                return Err(OpenError::RawBacking {
                    path: spec.path.clone(),
                });
            }
            let (host, _) = open_host(&spec.path, &opts, read_only, passed)?;
            Arc::new(crate::format::Raw::new(Arc::new(host)))
        }
        ImageFormat::Qcow2 => Arc::new(crate::qcow2::open_qcow2(spec, &opts, passed)?),
    })
}

/// Reads `buf.len()` bytes of `f`'s virtual disk at `offset`, through
/// its chain.
pub fn read_virtual(f: &dyn Format, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let m = f.map(offset, buf.len() as u64, false)?;
        let n = (m.len() as usize).min(buf.len()).max(1);
        let (now, rest) = buf.split_at_mut(n);
        match m {
            Mapping::Host { offset: host, .. } => f.storage().read_at(now, host)?,
            Mapping::Zero { .. } => now.fill(0),
            Mapping::Format { .. } => f.read(offset, now)?,
        }
        offset += n as u64;
        buf = rest;
    }
    Ok(())
}

/// Writes `buf` to `f`'s virtual disk at `offset` (allocating as needed).
pub fn write_virtual(f: &dyn Format, mut offset: u64, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let m = f.map(offset, buf.len() as u64, true)?;
        let n = (m.len() as usize).min(buf.len()).max(1);
        let (now, rest) = buf.split_at(n);
        match m {
            Mapping::Host { offset: host, .. } => f.storage().write_at(now, host)?,
            Mapping::Zero { .. } | Mapping::Format { .. } => f.write(offset, now, false)?,
        }
        offset += n as u64;
        buf = rest;
    }
    Ok(())
}

/// Copies what `top` holds itself in `[offset, offset + len)` (data or
/// explicit zeroes, per [`Format::allocation`]) into `base`; `buf` is
/// scratch space of at least `len` bytes. Returns the bytes copied.
pub fn copy_allocated(
    top: &dyn Format,
    base: &dyn Format,
    offset: u64,
    len: u64,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut at = offset;
    let end = offset + len;
    let mut copied = 0;
    while at < end {
        let (own, n) = top.allocation(at, end - at)?;
        let n = n.clamp(1, end - at);
        if own {
            let chunk = &mut buf[..n as usize];
            read_virtual(top, at, chunk)?;
            write_virtual(base, at, chunk)?;
            copied += n;
        }
        at += n;
    }
    Ok(copied)
}

/// Bytes of `[0, size)` that `top` holds itself.
pub fn allocated_bytes(top: &dyn Format, size: u64) -> io::Result<u64> {
    let mut at = 0;
    let mut total = 0;
    while at < size {
        let (own, n) = top.allocation(at, size - at)?;
        let n = n.clamp(1, size - at);
        if own {
            total += n;
        }
        at += n;
    }
    Ok(total)
}

/// Copies every range of `ranges` (all of them, whoever holds them) from
/// `top` into `base`: the ranges a guest wrote during the copy.
pub fn copy_ranges(
    top: &dyn Format,
    base: &dyn Format,
    ranges: &[(u64, u64)],
    buf: &mut [u8],
) -> io::Result<()> {
    let size = top.len()?;
    for &(offset, len) in ranges {
        let mut at = offset.min(size);
        let end = offset.saturating_add(len).min(size);
        while at < end {
            let n = (end - at).min(buf.len() as u64);
            let chunk = &mut buf[..n as usize];
            read_virtual(top, at, chunk)?;
            write_virtual(base, at, chunk)?;
            at += n;
        }
    }
    Ok(())
}

/// Makes `f`'s metadata and data durable.
pub fn flush(f: &dyn Format) -> io::Result<()> {
    f.flush()?;
    f.storage().flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_granules() {
        let g = LOG_GRANULE;
        let log = WriteLog::default();
        log.mark(100, 10);
        log.mark(g - 1, 2);
        log.mark(50, 0);
        assert_eq!(log.ranges(), vec![(0, 2 * g)]);
        log.mark(10 * g, 1);
        log.mark(70 * g + 5, g);
        assert_eq!(log.ranges(), vec![(0, 2 * g), (10 * g, g), (70 * g, 2 * g)]);
        assert_eq!(log.bytes(), 5 * g);
    }
}
