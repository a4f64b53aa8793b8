//! The guest's memory statistics through the balloon, as libvirt's QEMU
//! driver gets them: `qom-get guest-stats` on the balloon's QOM path, each
//! of QEMU's names mapped to libvirt's tag and unit, values the guest did
//! not report left out; the polling interval (`<memballoon><stats
//! period='N'/>`, `virsh dommemstat --period`) set with `qom-set`.

use rvirt_domain::argv::support::BALLOON_QOM_PATH;
use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;
use rvirt_remote::calls::DomainMemoryStat;
use serde_json::{json, Value};

/// `virDomainMemoryStatTags`.
pub mod tag {
    pub const SWAP_IN: i32 = 0;
    pub const SWAP_OUT: i32 = 1;
    pub const MAJOR_FAULT: i32 = 2;
    pub const MINOR_FAULT: i32 = 3;
    pub const UNUSED: i32 = 4;
    pub const AVAILABLE: i32 = 5;
    pub const ACTUAL_BALLOON: i32 = 6;
    pub const RSS: i32 = 7;
    pub const USABLE: i32 = 8;
    pub const LAST_UPDATE: i32 = 9;
    pub const DISK_CACHES: i32 = 10;
    pub const HUGETLB_PGALLOC: i32 = 11;
    pub const HUGETLB_PGFAIL: i32 = 12;
}

/// QEMU's name, libvirt's tag and the divisor to libvirt's unit (KiB for
/// sizes), in the order libvirt's qemuMonitorJSONGetMemoryStats reads
/// them; `last-update` sits beside `stats`, not in it.
const MAP: [(&str, i32, u64); 11] = [
    ("stat-swap-in", tag::SWAP_IN, 1024),
    ("stat-swap-out", tag::SWAP_OUT, 1024),
    ("stat-major-faults", tag::MAJOR_FAULT, 1),
    ("stat-minor-faults", tag::MINOR_FAULT, 1),
    ("stat-free-memory", tag::UNUSED, 1024),
    ("stat-total-memory", tag::AVAILABLE, 1024),
    ("stat-available-memory", tag::USABLE, 1024),
    ("last-update", tag::LAST_UPDATE, 1),
    ("stat-disk-caches", tag::DISK_CACHES, 1024),
    ("stat-htlb-pgalloc", tag::HUGETLB_PGALLOC, 1),
    ("stat-htlb-pgfail", tag::HUGETLB_PGFAIL, 1),
];

/// libvirt's statistics from a `guest-stats` answer. A value of -1 (as
/// an unsigned) is one the guest has not reported: left out, as libvirt
/// leaves it out rather than give bad data.
pub fn from_guest_stats(answer: &Value) -> Vec<DomainMemoryStat> {
    MAP.iter()
        .filter_map(|&(name, tag, div)| {
            let v = match name {
                "last-update" => answer.get(name),
                _ => answer.get("stats")?.get(name),
            }?;
            let val = v.as_u64()?;
            (val != u64::MAX).then_some(DomainMemoryStat {
                tag,
                val: val / div,
            })
        })
        .collect()
}

/// The guest's statistics from the VMM, or none (no balloon, or a VMM
/// that cannot say).
pub fn guest(qmp: &QmpClient) -> Vec<DomainMemoryStat> {
    let args = json!({ "path": BALLOON_QOM_PATH, "property": "guest-stats" });
    qmp.execute("qom-get", Some(args))
        .map(|v| from_guest_stats(&v))
        .unwrap_or_default()
}

/// Sets the balloon's statistics polling interval (0: none).
pub fn set_period(qmp: &QmpClient, secs: u32) -> Result<(), rvirt_qmp::ClientError> {
    let args = json!({
        "path": BALLOON_QOM_PATH,
        "property": "guest-stats-polling-interval",
        "value": secs,
    });
    qmp.execute("qom-set", Some(args)).map(drop)
}

/// The definition's virtio balloon, if it has one.
pub fn has_balloon(def: &Domain) -> bool {
    def.devices
        .others
        .iter()
        .any(|o| o.kind() == "memballoon" && o.model() != Some("none"))
}

/// `<memballoon><stats period='N'/>`: the polling interval the domain
/// asks for, if any (0 or unreadable: none).
pub fn period(def: &Domain) -> Option<u32> {
    def.devices
        .others
        .iter()
        .filter(|o| o.kind() == "memballoon" && o.model() != Some("none"))
        .find_map(|o| o.element.child("stats")?.attr("period")?.parse().ok())
        .filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_names_become_libvirts_tags_and_units() {
        let answer = json!({
            "last-update": 1700000000,
            "stats": {
                "stat-swap-in": u64::MAX,
                "stat-swap-out": u64::MAX,
                "stat-major-faults": 7,
                "stat-minor-faults": 3,
                "stat-free-memory": 32u64 << 20,
                "stat-total-memory": 64u64 << 20,
                "stat-available-memory": 48u64 << 20,
                "stat-disk-caches": 1u64 << 20,
                "stat-htlb-pgalloc": u64::MAX,
                "stat-htlb-pgfail": u64::MAX,
            }
        });
        let got: Vec<(i32, u64)> = from_guest_stats(&answer)
            .into_iter()
            .map(|s| (s.tag, s.val))
            .collect();
        assert_eq!(
            got,
            [
                (tag::MAJOR_FAULT, 7),
                (tag::MINOR_FAULT, 3),
                (tag::UNUSED, 32 << 10),
                (tag::AVAILABLE, 64 << 10),
                (tag::USABLE, 48 << 10),
                (tag::LAST_UPDATE, 1700000000),
                (tag::DISK_CACHES, 1 << 10),
            ]
        );
        // Nothing reported yet: only last-update (0), as QEMU answers.
        let none =
            from_guest_stats(&json!({"last-update": 0, "stats": {"stat-swap-in": u64::MAX}}));
        assert_eq!(none.len(), 1);
        assert_eq!((none[0].tag, none[0].val), (tag::LAST_UPDATE, 0));
        assert!(from_guest_stats(&json!("garbage")).is_empty());
    }
}
