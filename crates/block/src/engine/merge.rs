//! Request merging, as QEMU's `request-merging=on`: within one pass, reads
//! adjacent on disk become one vectored read, writes one vectored write.
//!
//! Only reads and writes merge. Anything else (a flush, discard,
//! write-zeroes) splits the pass: requests on either side of it are never
//! merged together, so a flush still follows the writes popped before it.

use super::Job;
use crate::buf::total_len;
use crate::request::Op;

/// Most bytes one merged transfer moves.
pub const MAX_BYTES: u64 = 1 << 20;
/// Most iovecs one merged transfer takes (IOV_MAX).
pub const MAX_IOV: usize = 1024;

/// What the planner needs to know of a read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub write: bool,
    pub offset: u64,
    pub len: u64,
    /// iovecs the request's buffers take.
    pub iovs: usize,
}

impl Extent {
    /// The extent of a read or write job; None for anything else.
    pub fn of<T>(job: &Job<T>) -> Option<Extent> {
        let (write, offset, bufs) = match &job.op {
            Op::Read { offset, bufs } => (false, *offset, bufs),
            Op::Write { offset, bufs } => (true, *offset, bufs),
            _ => return None,
        };
        Some(Extent {
            write,
            offset,
            len: total_len(bufs),
            iovs: bufs.len(),
        })
    }
}

/// Groups `reqs` (all reads or writes of one pass segment) into runs to
/// issue as one transfer each: indices into `reqs`, each run in ascending
/// disk order with contiguous byte ranges, the same direction, and at most
/// [`MAX_BYTES`] and [`MAX_IOV`] (a single request over those stays alone).
/// The sort is stable, so requests at the same offset keep their order.
pub fn plan(reqs: &[Extent]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| (reqs[i].write, reqs[i].offset));
    let mut runs: Vec<Vec<usize>> = Vec::new();
    // End offset, bytes and iovecs of the last run.
    let (mut end, mut bytes, mut iovs) = (0u64, 0u64, 0usize);
    for i in order {
        let r = reqs[i];
        if let Some(run) = runs.last_mut() {
            let last = reqs[run[run.len() - 1]];
            if last.write == r.write
                && r.len > 0
                && last.len > 0
                && end == r.offset
                && bytes + r.len <= MAX_BYTES
                && iovs + r.iovs <= MAX_IOV
            {
                run.push(i);
                end += r.len;
                bytes += r.len;
                iovs += r.iovs;
                continue;
            }
        }
        runs.push(vec![i]);
        end = r.offset.saturating_add(r.len);
        bytes = r.len;
        iovs = r.iovs;
    }
    runs
}

/// What went in merged runs (runs of more than one request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    pub reads: u64,
    pub read_runs: u64,
    pub writes: u64,
    pub write_runs: u64,
}

impl Merged {
    /// Counts a run of `n` requests (nothing for a run of one).
    pub fn add(&mut self, write: bool, n: usize) {
        if n > 1 {
            if write {
                self.writes += n as u64;
                self.write_runs += 1;
            } else {
                self.reads += n as u64;
                self.read_runs += 1;
            }
        }
    }
}

/// Splits a pass into what to issue: runs of merged reads or writes (in
/// disk order) and, alone and in their place, the jobs that do not merge.
pub fn batches<T>(jobs: Vec<Job<T>>) -> Vec<Vec<Job<T>>> {
    let mut out = Vec::new();
    let mut segment: Vec<(Job<T>, Extent)> = Vec::new();
    for job in jobs {
        match Extent::of(&job) {
            Some(e) => segment.push((job, e)),
            None => {
                flush_segment(&mut segment, &mut out);
                out.push(vec![job]);
            }
        }
    }
    flush_segment(&mut segment, &mut out);
    out
}

fn flush_segment<T>(segment: &mut Vec<(Job<T>, Extent)>, out: &mut Vec<Vec<Job<T>>>) {
    if segment.is_empty() {
        return;
    }
    let extents: Vec<Extent> = segment.iter().map(|(_, e)| *e).collect();
    let runs = plan(&extents);
    let mut jobs: Vec<Option<Job<T>>> = segment.drain(..).map(|(j, _)| Some(j)).collect();
    for run in runs {
        out.push(run.iter().filter_map(|&i| jobs[i].take()).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(write: bool, sector: u64, sectors: u64) -> Extent {
        Extent {
            write,
            offset: sector * 512,
            len: sectors * 512,
            iovs: 1,
        }
    }

    #[test]
    fn adjacent_same_direction_requests_merge_in_disk_order() {
        let reqs = [e(false, 8, 8), e(false, 0, 8), e(false, 16, 8)];
        assert_eq!(plan(&reqs), vec![vec![1, 0, 2]]);
    }

    #[test]
    fn gaps_overlaps_and_directions_split_runs() {
        let reqs = [
            e(false, 0, 8),
            e(true, 8, 8),   // other direction
            e(false, 17, 8), // a gap after 0..8
            e(false, 20, 8), // overlaps 17..25
            e(true, 17, 1),  // a gap after the write at 8..16
        ];
        assert_eq!(
            plan(&reqs),
            vec![vec![0], vec![2], vec![3], vec![1], vec![4]]
        );
    }

    #[test]
    fn runs_stop_at_the_byte_and_iovec_limits() {
        let reqs: Vec<Extent> = (0..300).map(|i| e(true, i * 8, 8)).collect();
        let runs = plan(&reqs);
        // 4 KiB each: 256 per MiB.
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), [256, 44]);
        let many = Extent {
            iovs: 600,
            ..e(false, 0, 8)
        };
        let next = Extent {
            iovs: 600,
            ..e(false, 8, 8)
        };
        assert_eq!(plan(&[many, next]), vec![vec![0], vec![1]]);
        // One request over the limits is issued alone.
        assert_eq!(plan(&[e(false, 0, 4096)]), vec![vec![0]]);
    }

    #[test]
    fn empty_requests_do_not_merge() {
        let reqs = [e(false, 0, 8), e(false, 8, 0), e(false, 8, 8)];
        assert_eq!(plan(&reqs), vec![vec![0], vec![1], vec![2]]);
    }
}
