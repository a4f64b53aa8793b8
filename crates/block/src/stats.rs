//! I/O statistics of a disk, counted where requests finish, with QEMU's
//! meanings (its `BlockDeviceStats`): operations and bytes per kind as the
//! guest asked for them, failed and invalid ones apart, requests merged
//! into others, the highest offset written. Counters are atomics, so a
//! monitor thread reads them without taking the device's lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::request::IoKind;

/// The live counters of one disk.
#[derive(Debug)]
pub struct Stats {
    rd_bytes: AtomicU64,
    wr_bytes: AtomicU64,
    unmap_bytes: AtomicU64,
    rd_ops: AtomicU64,
    wr_ops: AtomicU64,
    flush_ops: AtomicU64,
    unmap_ops: AtomicU64,
    failed: [AtomicU64; 4],
    invalid: [AtomicU64; 4],
    rd_merged: AtomicU64,
    wr_merged: AtomicU64,
    wr_highest_offset: AtomicU64,
    /// Nanoseconds after `epoch` of the last completion, plus one; 0 when
    /// nothing has completed yet.
    last_done: AtomicU64,
    epoch: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            rd_bytes: AtomicU64::new(0),
            wr_bytes: AtomicU64::new(0),
            unmap_bytes: AtomicU64::new(0),
            rd_ops: AtomicU64::new(0),
            wr_ops: AtomicU64::new(0),
            flush_ops: AtomicU64::new(0),
            unmap_ops: AtomicU64::new(0),
            failed: Default::default(),
            invalid: Default::default(),
            rd_merged: AtomicU64::new(0),
            wr_merged: AtomicU64::new(0),
            wr_highest_offset: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// The counters at one moment, named as QEMU's `BlockDeviceStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub unmap_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
    pub flush_operations: u64,
    pub unmap_operations: u64,
    pub failed_rd_operations: u64,
    pub failed_wr_operations: u64,
    pub failed_flush_operations: u64,
    pub failed_unmap_operations: u64,
    pub invalid_rd_operations: u64,
    pub invalid_wr_operations: u64,
    pub invalid_flush_operations: u64,
    pub invalid_unmap_operations: u64,
    pub rd_merged: u64,
    pub wr_merged: u64,
    pub wr_highest_offset: u64,
    /// Nanoseconds since the last request finished; None before any did.
    pub idle_time_ns: Option<u64>,
}

fn slot(kind: IoKind) -> usize {
    match kind {
        IoKind::Read => 0,
        IoKind::Write => 1,
        IoKind::Flush => 2,
        IoKind::Unmap => 3,
    }
}

impl Stats {
    /// A finished request of `kind` over `bytes`; `end` is the end of what
    /// it wrote (0 for none).
    pub(crate) fn done(&self, kind: IoKind, bytes: u64, end: u64, ok: bool) {
        if ok {
            let (ops, by) = match kind {
                IoKind::Read => (&self.rd_ops, Some(&self.rd_bytes)),
                IoKind::Write => (&self.wr_ops, Some(&self.wr_bytes)),
                IoKind::Flush => (&self.flush_ops, None),
                IoKind::Unmap => (&self.unmap_ops, Some(&self.unmap_bytes)),
            };
            ops.fetch_add(1, Relaxed);
            if let Some(b) = by {
                b.fetch_add(bytes, Relaxed);
            }
            if end > 0 {
                self.wr_highest_offset.fetch_max(end, Relaxed);
            }
        } else {
            self.failed[slot(kind)].fetch_add(1, Relaxed);
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_done.store(now.saturating_add(1), Relaxed);
    }

    /// A request refused before it reached the disk (out of range, badly
    /// formed), as QEMU's `invalid_*_operations` count them.
    pub fn invalid(&self, kind: IoKind) {
        self.invalid[slot(kind)].fetch_add(1, Relaxed);
    }

    /// `n` requests of `kind` went as part of merged runs: QEMU counts
    /// each run of n as n - 1 merged.
    pub(crate) fn merged(&self, kind: IoKind, n: u64) {
        match kind {
            IoKind::Read => self.rd_merged.fetch_add(n, Relaxed),
            _ => self.wr_merged.fetch_add(n, Relaxed),
        };
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let last = self.last_done.load(Relaxed);
        let idle_time_ns = (last > 0).then(|| {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            now.saturating_sub(last - 1)
        });
        let f = |i: usize| self.failed[i].load(Relaxed);
        let v = |i: usize| self.invalid[i].load(Relaxed);
        StatsSnapshot {
            rd_bytes: self.rd_bytes.load(Relaxed),
            wr_bytes: self.wr_bytes.load(Relaxed),
            unmap_bytes: self.unmap_bytes.load(Relaxed),
            rd_operations: self.rd_ops.load(Relaxed),
            wr_operations: self.wr_ops.load(Relaxed),
            flush_operations: self.flush_ops.load(Relaxed),
            unmap_operations: self.unmap_ops.load(Relaxed),
            failed_rd_operations: f(0),
            failed_wr_operations: f(1),
            failed_flush_operations: f(2),
            failed_unmap_operations: f(3),
            invalid_rd_operations: v(0),
            invalid_wr_operations: v(1),
            invalid_flush_operations: v(2),
            invalid_unmap_operations: v(3),
            rd_merged: self.rd_merged.load(Relaxed),
            wr_merged: self.wr_merged.load(Relaxed),
            wr_highest_offset: self.wr_highest_offset.load(Relaxed),
            idle_time_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_outcome() {
        let s = Stats::default();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
        s.done(IoKind::Read, 4096, 0, true);
        s.done(IoKind::Write, 512, 5120, true);
        s.done(IoKind::Write, 512, 1024, true);
        s.done(IoKind::Flush, 0, 0, true);
        s.done(IoKind::Flush, 0, 0, false);
        s.done(IoKind::Unmap, 8192, 0, true);
        s.invalid(IoKind::Read);
        s.merged(IoKind::Write, 3);
        let n = s.snapshot();
        assert_eq!((n.rd_operations, n.rd_bytes), (1, 4096));
        assert_eq!((n.wr_operations, n.wr_bytes), (2, 1024));
        assert_eq!(n.wr_highest_offset, 5120);
        assert_eq!((n.flush_operations, n.failed_flush_operations), (1, 1));
        assert_eq!((n.unmap_operations, n.unmap_bytes), (1, 8192));
        assert_eq!((n.invalid_rd_operations, n.wr_merged), (1, 3));
        assert!(n.idle_time_ns.is_some());
    }
}
