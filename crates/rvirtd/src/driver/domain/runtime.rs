//! The record rvirtd keeps for each running domain in the state
//! directory, so that a restarted daemon (even after `kill -9`) finds its
//! VMs again: pid, monitor socket, id, state, the live definition, and
//! what it holds (files given to its user, hot-plugged disks' nodes).

use std::collections::BTreeMap;
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
    /// The files in `held.labelled` given to the VM's user after its
    /// start (a hot-plugged disk, an overlay, a medium), each given back
    /// when the VM lets go of it rather than at its end.
    #[serde(default)]
    pub labelled_later: Vec<PathBuf>,
    /// What its hot-plugged devices hold in the VMM, for their detach.
    #[serde(default)]
    pub hotplug: HotplugRecord,
}

/// What a detach of a hot-plugged disk undoes in the VMM, kept so that a
/// daemon restarted between the attach and the detach still deletes the
/// disk's block nodes. (Its fdsets need no record: they are removed once
/// the nodes hold the descriptors.)
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HotplugRecord {
    /// The block nodes of each hot-plugged disk, by alias, top first.
    #[serde(default)]
    pub nodes: BTreeMap<String, Vec<String>>,
    /// The next `libvirt-N-…` number no node has (0: unknown).
    #[serde(default)]
    pub next_node: u64,
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
            labelled_later: vec!["/img/hot.img".into()],
            hotplug: HotplugRecord {
                nodes: [(
                    "virtio-disk1".to_string(),
                    vec!["libvirt-3-format".to_string()],
                )]
                .into(),
                next_node: 4,
            },
        };
        rec.save(&dir.path().join("a.json")).unwrap();
        std::fs::write(dir.path().join("b.json"), "{not json").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let files = list(dir.path());
        assert_eq!(files.len(), 2);
        assert_eq!(RuntimeRecord::load(&files[0]).unwrap(), rec);
        assert!(RuntimeRecord::load(&files[1]).is_err());
        // A record from before hot-plug was recorded still loads.
        let old = r#"{"name":"a","uuid":"u","id":1,"pid":2,"monitor":"/m","state":1,
            "reason":1,"persistent":false,"live_xml":"<domain/>"}"#;
        let old: RuntimeRecord = serde_json::from_str(old).unwrap();
        assert_eq!(old.hotplug, HotplugRecord::default());
        assert!(old.labelled_later.is_empty());
    }
}
