//! A cgroup of one's own: the VM's processes accounted together, its
//! memory and CPU limited, everything killed and the group removed when
//! the VM ends.
//!
//! cgroup v2 is the home: `<v2 mount>/rvirt/<name>`, with `memory.max`,
//! `memory.high`, `cpu.weight`, `cpu.max` and `pids.max` where the v2
//! hierarchy has the controller. On a hybrid host (v1 controllers
//! mounted, v2 holding none of them) the controllers v2 lacks are used
//! through their v1 hierarchy, `<v1 mount>/rvirt/<name>`, as libvirt does
//! on such hosts.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Limits from the domain's `<memtune>` and `<cputune>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `hard_limit`, bytes.
    pub memory_max: Option<u64>,
    /// `soft_limit`, bytes.
    pub memory_high: Option<u64>,
    /// `shares` (cgroup v1 units, 2..262144).
    pub cpu_shares: Option<u64>,
    /// (quota, period) in microseconds for the whole VM.
    pub cpu_max: Option<(u64, u64)>,
    /// Tasks (threads and processes) at most.
    pub pids_max: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy is mounted")]
    NoHierarchy,
    #[error("cannot create {0}")]
    Create(PathBuf, #[source] io::Error),
    #[error("cannot set {0}")]
    Set(PathBuf, #[source] io::Error),
}

/// A VM's cgroup: its directory in each hierarchy it uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cgroup {
    /// The v2 directory, if cgroup v2 is mounted.
    pub v2: Option<PathBuf>,
    /// v1 directories (one per controller hierarchy used).
    pub v1: Vec<PathBuf>,
}

/// Where the hierarchies are mounted: the v2 mount and, per v1 controller,
/// its mount (`/proc/self/mountinfo`).
#[derive(Debug, Default)]
struct Mounts {
    v2: Option<PathBuf>,
    v1: Vec<(String, PathBuf)>,
}

fn mounts() -> Mounts {
    let mut m = Mounts::default();
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return m;
    };
    for line in info.lines() {
        // … mount-point … - fstype source super-options
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let point = pre.split_whitespace().nth(4).unwrap_or_default();
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or_default();
        let opts = post.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" if m.v2.is_none() => m.v2 = Some(PathBuf::from(point)),
            "cgroup" => {
                for c in ["memory", "cpu", "pids"] {
                    if opts.split(',').any(|o| o == c) {
                        m.v1.push((c.to_string(), PathBuf::from(point)));
                    }
                }
            }
            _ => {}
        }
    }
    m
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| CgroupError::Set(p, e))
}

fn mkdir(p: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(CgroupError::Create(p.to_path_buf(), e))
        }
        _ => Ok(()),
    }
}

/// The v2 `cpu.weight` for v1 `cpu.shares`, as the kernel documents the
/// conversion (systemd and libvirt use the same).
fn weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

impl Cgroup {
    /// Creates `rvirt/<name>` (with `limits`) in every hierarchy it needs.
    pub fn create(name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let m = mounts();
        let mut cg = Cgroup::default();
        let mut v2_has: Vec<String> = Vec::new();
        if let Some(root) = &m.v2 {
            let available =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            v2_has = available
                .split_whitespace()
                .filter(|c| ["memory", "cpu", "pids"].contains(c))
                .map(str::to_string)
                .collect();
            let parent = root.join("rvirt");
            mkdir(&parent)?;
            if !v2_has.is_empty() {
                let enable: Vec<String> = v2_has.iter().map(|c| format!("+{c}")).collect();
                // Best effort on the root (systemd may own it); required
                // on ours.
                let _ = write(root, "cgroup.subtree_control", &enable.join(" "));
                write(&parent, "cgroup.subtree_control", &enable.join(" "))?;
            }
            let dir = parent.join(name);
            mkdir(&dir)?;
            cg.v2 = Some(dir);
        }
        let mut v1_dirs: Vec<(String, PathBuf)> = Vec::new();
        for (ctrl, point) in &m.v1 {
            if v2_has.contains(ctrl) {
                continue;
            }
            let dir = point.join("rvirt").join(name);
            if !cg.v1.contains(&dir) {
                mkdir(&point.join("rvirt"))?;
                mkdir(&dir)?;
                cg.v1.push(dir.clone());
            }
            v1_dirs.push((ctrl.clone(), dir));
        }
        if cg.v2.is_none() && cg.v1.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        let result = cg.set_limits(limits, &v2_has, &v1_dirs);
        if result.is_err() {
            cg.remove(Duration::ZERO);
        }
        result.map(|()| cg)
    }

    fn set_limits(
        &self,
        l: &Limits,
        v2_has: &[String],
        v1: &[(String, PathBuf)],
    ) -> Result<(), CgroupError> {
        let v1_dir = |c: &str| v1.iter().find(|(n, _)| n == c).map(|(_, d)| d.as_path());
        let v2 = |c: &str| self.v2.as_deref().filter(|_| v2_has.iter().any(|h| h == c));
        if let Some(max) = l.memory_max {
            if let Some(d) = v2("memory") {
                write(d, "memory.max", &max.to_string())?;
            } else if let Some(d) = v1_dir("memory") {
                write(d, "memory.limit_in_bytes", &max.to_string())?;
            }
        }
        if let Some(high) = l.memory_high {
            if let Some(d) = v2("memory") {
                write(d, "memory.high", &high.to_string())?;
            } else if let Some(d) = v1_dir("memory") {
                write(d, "memory.soft_limit_in_bytes", &high.to_string())?;
            }
        }
        if let Some(shares) = l.cpu_shares {
            if let Some(d) = v2("cpu") {
                write(d, "cpu.weight", &weight(shares).to_string())?;
            } else if let Some(d) = v1_dir("cpu") {
                write(d, "cpu.shares", &shares.to_string())?;
            }
        }
        if let Some((quota, period)) = l.cpu_max {
            if let Some(d) = v2("cpu") {
                write(d, "cpu.max", &format!("{quota} {period}"))?;
            } else if let Some(d) = v1_dir("cpu") {
                write(d, "cpu.cfs_period_us", &period.to_string())?;
                write(d, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let Some(max) = l.pids_max {
            if let Some(d) = v2("pids") {
                write(d, "pids.max", &max.to_string())?;
            } else if let Some(d) = v1_dir("pids") {
                write(d, "pids.max", &max.to_string())?;
            }
        }
        Ok(())
    }

    /// Whether the group bounds its tasks: `pids.max` is set in a
    /// hierarchy with the pids controller.
    pub fn bounds_pids(&self) -> bool {
        self.v2
            .iter()
            .chain(&self.v1)
            .any(|d| std::fs::read_to_string(d.join("pids.max")).is_ok_and(|v| v.trim() != "max"))
    }

    /// The files a process writes `0` to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.v2
            .iter()
            .chain(self.v1.iter())
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// The pids in the group (the v2 directory's, else the first v1's).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.v2.as_ref().or(self.v1.first()) else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process left in the group, then removes it, waiting at
    /// most `wait` for the processes to go; true when no directory of it is
    /// left. Leaves nothing on failure that a later call cannot remove.
    pub fn remove(&self, wait: Duration) -> bool {
        // cgroup.kill (v2, Linux 5.14) kills the whole group at once;
        // otherwise each listed process is killed.
        let killed = self
            .v2
            .as_ref()
            .is_some_and(|d| std::fs::write(d.join("cgroup.kill"), "1").is_ok());
        if !killed {
            for pid in self.pids() {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        let deadline = Instant::now() + wait;
        let mut gone = true;
        for dir in self.v2.iter().chain(self.v1.iter()) {
            loop {
                match std::fs::remove_dir(dir) {
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "cgroup left behind");
                        gone = false;
                        break;
                    }
                    _ => break,
                }
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_weights_as_the_kernel_converts_them() {
        assert_eq!(weight(1024), 39);
        assert_eq!(weight(2), 1);
        assert_eq!(weight(262_144), 10_000);
    }
}
