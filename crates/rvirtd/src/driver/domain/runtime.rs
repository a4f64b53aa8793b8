//! The record rvirtd keeps for each running domain in the state
//! directory, so that a restarted daemon (even after `kill -9`) finds its
//! VMs again: pid, monitor socket, id, state and the live definition.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeRecord {
    pub name: String,
    pub uuid: String,
    pub id: i32,
    pub pid: i32,
    pub monitor: PathBuf,
    /// `virDomainState` and reason at the last change.
    pub state: i32,
    pub reason: i32,
    /// Whether the domain had a persistent definition when it ran.
    pub persistent: bool,
    /// The definition it runs with, in dumpxml layout.
    pub live_xml: String,
    /// What the confined VM holds (labels, cgroup), released when it ends.
    #[serde(default)]
    pub held: super::confine::Held,
    /// The passt of its user-mode interfaces (pid, socket path), adopted
    /// with it.
    #[serde(default)]
    pub passt: Vec<crate::supervise::Record>,
}

impl RuntimeRecord {
    /// How the VMM is found again: its pid, and its UUID in its command
    /// line (`-uuid`).
    pub fn child_record(&self) -> crate::supervise::Record {
        crate::supervise::Record {
            pid: self.pid,
            marker: self.uuid.clone(),
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &data)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&data).map_err(|e| e.to_string())
    }
}

/// Every record file in `dir`.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = RuntimeRecord {
            name: "a".into(),
            uuid: "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f".into(),
            id: 3,
            pid: 42,
            monitor: dir.path().join("a/monitor.sock"),
            state: 1,
            reason: 1,
            persistent: true,
            live_xml: "<domain/>".into(),
            held: Default::default(),
            passt: vec![crate::supervise::Record {
                pid: 43,
                marker: "/run/x/passt/net0.socket".into(),
            }],
        };
        rec.save(&dir.path().join("a.json")).unwrap();
        std::fs::write(dir.path().join("b.json"), "{not json").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let files = list(dir.path());
        assert_eq!(files.len(), 2);
        assert_eq!(RuntimeRecord::load(&files[0]).unwrap(), rec);
        assert!(RuntimeRecord::load(&files[1]).is_err());
    }
}
