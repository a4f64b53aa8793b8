//! The `block` group of `virsh domstats` (virt-manager's disk I/O graphs;
//! `virsh domblkstat` will read the same): the VMM's `query-blockstats`,
//! matched to the definition's disks by device alias, in libvirt's field
//! names and order.

use std::time::Duration;

use rvirt_domain::Domain;
use rvirt_qmp::{BlockStats, QmpClient};
use rvirt_remote::{TypedParam, TypedParamValue};

/// A monitor that does not answer within this is skipped: the caller holds
/// the domain table.
const TIMEOUT: Duration = Duration::from_secs(2);

fn param(field: String, value: TypedParamValue) -> TypedParam {
    TypedParam { field, value }
}

/// The VMM's counters per disk; empty when it cannot be asked.
fn query(qmp: &QmpClient) -> Vec<BlockStats> {
    match qmp.execute_timeout("query-blockstats", None, TIMEOUT) {
        Ok(v) => serde_json::from_value(v).unwrap_or_else(|error| {
            tracing::warn!(%error, "query-blockstats answer not understood");
            Vec::new()
        }),
        Err(error) => {
            tracing::debug!(%error, "query-blockstats failed");
            Vec::new()
        }
    }
}

/// DOMAIN_BLOCK_STATS (`virsh domblkstat`): the counters of the disk
/// whose target (`vda`) or source path is `disk`, as libvirt finds it:
/// read requests and bytes, write requests and bytes, errors (-1: the VMM
/// keeps no error count, as libvirt says of QEMU).
pub fn disk_stats(def: &Domain, qmp: &QmpClient, disk: &str) -> Option<[i64; 5]> {
    let d = def
        .devices
        .disks
        .iter()
        .find(|d| d.target_dev == disk || d.source_path() == Some(disk))?;
    let alias = d.info.alias.as_deref()?;
    let stats = query(qmp);
    let s = &stats
        .iter()
        .find(|s| s.qdev.as_deref() == Some(alias))?
        .stats;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Some([
        n(s.rd_operations),
        n(s.rd_bytes),
        n(s.wr_operations),
        n(s.wr_bytes),
        -1,
    ])
}

/// `block.count` and, per disk, its name, path and counters.
pub fn params(def: &Domain, qmp: &QmpClient) -> Vec<TypedParam> {
    let stats = query(qmp);
    let disks = &def.devices.disks;
    let mut p = vec![param(
        "block.count".into(),
        TypedParamValue::UInt(disks.len() as u32),
    )];
    for (i, d) in disks.iter().enumerate() {
        let key = |k: &str| format!("block.{i}.{k}");
        p.push(param(
            key("name"),
            TypedParamValue::String(d.target_dev.clone()),
        ));
        if let Some(path) = d.source_path() {
            p.push(param(key("path"), TypedParamValue::String(path.into())));
        }
        let alias = d.info.alias.as_deref();
        let Some(s) = stats
            .iter()
            .find(|s| alias.is_some() && s.qdev.as_deref() == alias)
        else {
            continue;
        };
        let s = &s.stats;
        for (k, v) in [
            ("rd.reqs", s.rd_operations),
            ("rd.bytes", s.rd_bytes),
            ("rd.times", s.rd_total_time_ns),
            ("wr.reqs", s.wr_operations),
            ("wr.bytes", s.wr_bytes),
            ("wr.times", s.wr_total_time_ns),
            ("fl.reqs", s.flush_operations),
            ("fl.times", s.flush_total_time_ns),
            ("allocation", s.wr_highest_offset),
        ] {
            p.push(param(key(k), TypedParamValue::ULLong(v)));
        }
    }
    p
}
