//! Host facts as libvirt's node calls give them: free memory (the host
//! and its one NUMA cell), memory statistics from /proc/meminfo and CPU
//! time from /proc/stat, libvirt's fields and units (`virsh freecell`,
//! `nodememstats`, `nodecpustats`; Ansible's `freemem`).

use rvirt_remote::calls::{NodeStat, NodeStatsRet};
use rvirt_remote::RemoteError;

/// `VIR_NODE_CPU_STATS_ALL_CPUS` / `VIR_NODE_MEMORY_STATS_ALL_CELLS`.
pub const ALL: i32 = -1;

/// The `Key: value kB` fields of a /proc/meminfo text, in KiB.
pub fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split(':').next() == Some(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn meminfo() -> String {
    std::fs::read_to_string("/proc/meminfo").unwrap_or_default()
}

/// Free memory in bytes, as `virNodeGetFreeMemory` reports it.
pub fn free_bytes() -> u64 {
    meminfo_field(&meminfo(), "MemFree").unwrap_or(0) * 1024
}

/// The node's one cell's free memory for NODE_GET_CELLS_FREE_MEMORY.
pub fn cells_free(start: i32, max: i32) -> Result<Vec<u64>, RemoteError> {
    if start != 0 {
        return Err(RemoteError::invalid_arg(&format!(
            "start cell {start} out of range (0-0)"
        )));
    }
    if max < 1 {
        return Err(RemoteError::invalid_arg("maxcells must be positive"));
    }
    Ok(vec![free_bytes()])
}

/// What a stats call returns: with `nparams` 0 only how many there are
/// (clients ask that first), else the fields.
fn answer(fields: Vec<(&str, u64)>, nparams: i32) -> NodeStatsRet {
    let n = fields.len() as i32;
    if nparams == 0 {
        return NodeStatsRet {
            params: Vec::new(),
            nparams: n,
        };
    }
    NodeStatsRet {
        params: fields
            .into_iter()
            .take(nparams.max(0) as usize)
            .map(|(f, v)| NodeStat {
                field: f.to_string(),
                value: v,
            })
            .collect(),
        nparams: n.min(nparams),
    }
}

/// NODE_GET_MEMORY_STATS: total, free, buffers, cached (KiB).
pub fn memory_stats(text: &str, cell: i32, nparams: i32) -> Result<NodeStatsRet, RemoteError> {
    if cell != ALL && cell != 0 {
        return Err(RemoteError::invalid_arg(&format!(
            "Invalid cell number {cell}"
        )));
    }
    if nparams < 0 {
        return Err(RemoteError::invalid_arg("nparams must not be negative"));
    }
    let get = |k| meminfo_field(text, k).unwrap_or(0);
    Ok(answer(
        vec![
            ("total", get("MemTotal")),
            ("free", get("MemFree")),
            ("buffers", get("Buffers")),
            ("cached", get("Cached")),
        ],
        nparams,
    ))
}

/// NODE_GET_CPU_STATS: kernel, user, idle and iowait time in ns, of one
/// CPU or all, as libvirt sums /proc/stat's columns (kernel: system, irq,
/// softirq; user: user and nice).
pub fn cpu_stats(text: &str, cpu: i32, nparams: i32) -> Result<NodeStatsRet, RemoteError> {
    if nparams < 0 {
        return Err(RemoteError::invalid_arg("nparams must not be negative"));
    }
    let tag = if cpu == ALL {
        "cpu".to_string()
    } else {
        format!("cpu{cpu}")
    };
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag.as_str()))
        .ok_or_else(|| {
            RemoteError::invalid_arg(&format!("Invalid cpuNum in {}", "virHostCPUGetStats"))
        })?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let col = |i: usize| v.get(i).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux: one tick is 10 ms.
    let ns = |ticks: u64| ticks.saturating_mul(10_000_000);
    Ok(answer(
        vec![
            ("kernel", ns(col(2) + col(5) + col(6))),
            ("user", ns(col(0) + col(1))),
            ("idle", ns(col(3))),
            ("iowait", ns(col(4))),
        ],
        nparams,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:   5000 kB\nBuffers:          200 kB\nCached:         300 kB\n";
    const STAT: &str = "cpu  10 1 20 300 4 5 6 0 0 0\ncpu0 5 1 10 150 2 2 3 0 0 0\nintr 1\n";

    #[test]
    fn memory_fields_in_kib() {
        let r = memory_stats(MEMINFO, ALL, 0).unwrap();
        assert_eq!((r.nparams, r.params.len()), (4, 0));
        let r = memory_stats(MEMINFO, 0, 4).unwrap();
        let got: Vec<(String, u64)> = r.params.into_iter().map(|p| (p.field, p.value)).collect();
        assert_eq!(
            got,
            [
                ("total".to_string(), 24_000_000),
                ("free".into(), 1000),
                ("buffers".into(), 200),
                ("cached".into(), 300)
            ]
        );
        assert!(memory_stats(MEMINFO, 3, 4).is_err());
        assert_eq!(meminfo_field(MEMINFO, "MemFree"), Some(1000));
    }

    #[test]
    fn cpu_time_in_nanoseconds() {
        let r = cpu_stats(STAT, ALL, 4).unwrap();
        let get = |f: &str| r.params.iter().find(|p| p.field == f).unwrap().value;
        assert_eq!(get("kernel"), 31 * 10_000_000);
        assert_eq!(get("user"), 11 * 10_000_000);
        assert_eq!(get("idle"), 300 * 10_000_000);
        assert_eq!(get("iowait"), 4 * 10_000_000);
        assert_eq!(
            cpu_stats(STAT, 0, 4).unwrap().params[2].value,
            150 * 10_000_000
        );
        assert!(cpu_stats(STAT, 7, 4).is_err());
    }

    #[test]
    fn cells() {
        assert_eq!(cells_free(0, 8).unwrap().len(), 1);
        assert!(cells_free(1, 1).is_err());
        assert!(cells_free(0, 0).is_err());
    }
}
