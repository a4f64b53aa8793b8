//! CONNECT_GET_ALL_DOMAIN_STATS (`virsh domstats`, virt-manager's
//! polling): the state, cpu, balloon, vcpu and block groups, with
//! libvirt's field names.

use rvirt_remote::calls::ConnectGetAllDomainStatsArgs;
use rvirt_remote::consts::stats;
use rvirt_remote::types::DomainStatsRecord;
use rvirt_remote::{NonnullDomain, RemoteError, TypedParam, TypedParamValue};

use super::query::list_filter;
use super::registry::Entry;
use super::DomainDriver;

/// `VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS`: fail on unknown groups.
const ENFORCE_STATS: u32 = 1 << 31;
const KNOWN: u32 = stats::STATE | stats::CPU_TOTAL | stats::BALLOON | stats::VCPU | stats::BLOCK;

fn param(field: &str, value: TypedParamValue) -> TypedParam {
    TypedParam {
        field: field.into(),
        value,
    }
}

fn record(e: &Entry, groups: u32) -> DomainStatsRecord {
    let mut p = Vec::new();
    if groups & stats::STATE != 0 {
        p.push(param("state.state", TypedParamValue::Int(e.state as i32)));
        p.push(param("state.reason", TypedParamValue::Int(e.reason)));
    }
    // Only a running domain's groups need its definition: a stored one
    // would be parsed again for each record (`StoredDef`), which `rvirsh
    // list`'s state-only call over thousands of domains must not pay.
    if let Some(run) = &e.run {
        let def = run.live();
        if groups & stats::CPU_TOTAL != 0 {
            let ns = crate::sys::cpu_time_ns(run.pid());
            p.push(param("cpu.time", TypedParamValue::ULLong(ns)));
        }
        if groups & stats::BALLOON != 0 {
            let cur = run.memory_kib();
            p.push(param("balloon.current", TypedParamValue::ULLong(cur)));
            p.push(param(
                "balloon.maximum",
                TypedParamValue::ULLong(def.memory_kib),
            ));
        }
        if groups & stats::VCPU != 0 {
            let cur = def.vcpu.current.unwrap_or(def.vcpu.count);
            p.push(param("vcpu.current", TypedParamValue::UInt(cur)));
            p.push(param("vcpu.maximum", TypedParamValue::UInt(def.vcpu.count)));
        }
        if groups & stats::BLOCK != 0 {
            p.extend(super::blockstats::params(&def, &run.qmp));
        }
    }
    DomainStatsRecord {
        dom: e.handle(),
        params: p,
    }
}

impl DomainDriver {
    pub fn all_domain_stats(
        &self,
        a: &ConnectGetAllDomainStatsArgs,
    ) -> Result<Vec<DomainStatsRecord>, RemoteError> {
        if a.flags & ENFORCE_STATS != 0 && a.stats & !KNOWN != 0 {
            return Err(RemoteError::new(
                rvirt_remote::error::code::ARGUMENT_UNSUPPORTED,
                rvirt_remote::error::from::QEMU,
                Some(&format!(
                    "Stats types bits 0x{:x} are not supported by this daemon",
                    a.stats & !KNOWN
                )),
            ));
        }
        let groups = if a.stats == 0 { KNOWN } else { a.stats };
        let reg = self.reg();
        let entries: Vec<&Entry> = if a.doms.is_empty() {
            reg.domains
                .values()
                .filter(|e| list_filter(e, a.flags & 0xff))
                .collect()
        } else {
            a.doms
                .iter()
                .map(|d: &NonnullDomain| reg.resolve(d))
                .collect::<Result<_, _>>()?
        };
        Ok(entries.into_iter().map(|e| record(e, groups)).collect())
    }
}
