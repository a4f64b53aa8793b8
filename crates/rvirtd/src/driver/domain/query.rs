//! Read-only answers about domains: lists, info, state, XML, vCPUs.

use rvirt_domain::Domain;
use rvirt_remote::calls::{DomainGetInfoRet, DomainGetVcpusRet};
use rvirt_remote::consts::{list_flags as lf, xml_flags};
use rvirt_remote::event::DomainState;
use rvirt_remote::types::VcpuInfo;
use rvirt_remote::xdr::Opaque;
use rvirt_remote::{NonnullDomain, RemoteError};

use super::registry::Entry;
use super::DomainDriver;
use crate::driver::host::info as hostinfo;

/// `VIR_DOMAIN_AFFECT_LIVE`, `_CONFIG`, `VIR_DOMAIN_VCPU_MAXIMUM`, `_GUEST`.
const AFFECT_LIVE: u32 = 1;
const AFFECT_CONFIG: u32 = 2;
const VCPU_MAXIMUM: u32 = 4;
const VCPU_GUEST: u32 = 8;

/// Whether `e` passes the CONNECT_LIST_ALL_DOMAINS filter `flags`: each
/// pair of flags filters only when one of the two is given.
pub fn list_filter(e: &Entry, flags: u32) -> bool {
    let pair = |yes: u32, no: u32, is: bool| {
        let f = flags & (yes | no);
        f == 0 || f == (yes | no) || (is && f & yes != 0) || (!is && f & no != 0)
    };
    let state_mask = lf::RUNNING | lf::PAUSED | lf::SHUTOFF | lf::OTHER;
    let state_ok = flags & state_mask == 0
        || match e.state {
            DomainState::Running => flags & lf::RUNNING != 0,
            DomainState::Paused => flags & lf::PAUSED != 0,
            DomainState::Shutoff => flags & lf::SHUTOFF != 0,
            _ => flags & lf::OTHER != 0,
        };
    pair(lf::ACTIVE, lf::INACTIVE, e.is_active())
        && pair(lf::PERSISTENT, lf::TRANSIENT, e.is_persistent())
        && pair(lf::AUTOSTART, lf::NO_AUTOSTART, e.autostart)
        && pair(lf::MANAGEDSAVE, lf::NO_MANAGEDSAVE, false)
        && pair(lf::HAS_SNAPSHOT, lf::NO_SNAPSHOT, false)
        && state_ok
}

/// The vCPUs in use now (`current`, else the maximum).
fn current_vcpus(d: &Domain) -> u32 {
    d.vcpu.current.unwrap_or(d.vcpu.count)
}

impl DomainDriver {
    pub fn list_all(&self, flags: u32) -> Vec<NonnullDomain> {
        self.reg()
            .domains
            .values()
            .filter(|e| list_filter(e, flags))
            .map(Entry::handle)
            .collect()
    }

    pub fn get_info(&self, dom: &NonnullDomain) -> Result<DomainGetInfoRet, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        let def = e
            .current_def()
            .ok_or_else(|| RemoteError::internal("domain has no definition"))?;
        Ok(DomainGetInfoRet {
            state: e.state as u8,
            max_mem: def.memory_kib,
            memory: e.run.as_ref().map_or_else(
                || def.current_memory_kib.unwrap_or(def.memory_kib),
                |r| r.memory_kib(),
            ),
            nr_virt_cpu: current_vcpus(&def).min(u32::from(u16::MAX)) as u16,
            cpu_time: e
                .run
                .as_ref()
                .map_or(0, |r| crate::sys::cpu_time_ns(r.pid())),
        })
    }

    pub fn get_state(&self, dom: &NonnullDomain) -> Result<(i32, i32), RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        Ok((e.state as i32, e.reason))
    }

    /// DOMAIN_GET_XML_DESC: the live definition (with its id) while
    /// running, the persistent one with `--inactive` or when shut off.
    pub fn xml_desc(&self, dom: &NonnullDomain, flags: u32) -> Result<String, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        let inactive = flags & xml_flags::INACTIVE != 0;
        // Graphics passwords only with VIR_DOMAIN_XML_SECURE, as libvirt.
        let secure = flags & xml_flags::SECURE != 0;
        let hide = |d: &rvirt_domain::Domain| match secure {
            true => None,
            false => super::graphics::without_passwords(d),
        };
        match (&e.run, inactive, &e.config) {
            (Some(run), false, _) | (Some(run), true, None) => {
                let live = run.live();
                let xml = hide(&live).map_or_else(|| live.to_xml(), |d| d.to_xml());
                Ok(with_id(&xml, run.id))
            }
            (_, _, Some(cfg)) => match hide(&*cfg.domain()?) {
                Some(d) => Ok(d.to_inactive_xml()),
                None => Ok(cfg.xml().to_string()),
            },
            (None, _, None) => Err(RemoteError::internal("domain has no definition")),
        }
    }

    pub fn vcpus_flags(&self, dom: &NonnullDomain, flags: u32) -> Result<i32, RemoteError> {
        if flags & VCPU_GUEST != 0 {
            self.reg().resolve(dom)?;
            return Err(super::calls::agent_not_configured());
        }
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        let (live, config) = (flags & AFFECT_LIVE != 0, flags & AFFECT_CONFIG != 0);
        if live && config {
            return Err(RemoteError::invalid_arg(
                "flags 'affect live' and 'affect config' are mutually exclusive",
            ));
        }
        let def = if live || (!config && e.is_active()) {
            let run = e
                .run
                .as_ref()
                .ok_or_else(|| RemoteError::operation_invalid("domain is not running"))?;
            run.live()
        } else {
            e.config
                .as_ref()
                .ok_or_else(|| {
                    RemoteError::operation_invalid(
                        "transient domains do not have any persistent config",
                    )
                })?
                .domain()?
        };
        let n = if flags & VCPU_MAXIMUM != 0 {
            def.vcpu.count
        } else {
            current_vcpus(&def)
        };
        Ok(n as i32)
    }

    /// DOMAIN_GET_VCPUS: one entry per vCPU of a running domain, every
    /// vCPU allowed on every host CPU (rvirt does no pinning).
    pub fn vcpus(
        &self,
        dom: &NonnullDomain,
        maxinfo: i32,
        maplen: i32,
    ) -> Result<DomainGetVcpusRet, RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        let run = e.run.as_ref().ok_or_else(|| {
            RemoteError::operation_invalid("cannot retrieve vcpu information for inactive domain")
        })?;
        let n = current_vcpus(&run.live()).min(maxinfo.max(0) as u32);
        let host = hostinfo::cpus();
        let maplen = maplen.clamp(0, 2048) as usize;
        let info = (0..n)
            .map(|i| VcpuInfo {
                number: i,
                state: 1,
                cpu_time: 0,
                cpu: (i % host) as i32,
            })
            .collect();
        let mut maps = Vec::with_capacity(n as usize * maplen);
        for _ in 0..n {
            maps.extend(hostinfo::all_cpus_map(host, maplen));
        }
        Ok(DomainGetVcpusRet {
            info,
            cpumaps: Opaque(maps),
        })
    }
}

/// Adds `id='N'` to the root element, as libvirt shows running domains.
fn with_id(xml: &str, id: i32) -> String {
    match xml.find('>') {
        Some(end) if xml.starts_with("<domain") => {
            let (head, rest) = xml.split_at(end);
            format!("{head} id='{id}'{rest}")
        }
        _ => xml.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_goes_on_the_root() {
        assert_eq!(
            with_id("<domain type='kvm'>\n  <name>a</name>", 3),
            "<domain type='kvm' id='3'>\n  <name>a</name>"
        );
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use rvirt_remote::Uuid;

    fn entry(persistent: bool, state: DomainState, autostart: bool) -> Entry {
        let config = persistent.then(|| {
            super::super::registry::StoredDef::new(
                &Domain::from_xml(
                    "<domain type='kvm'><name>x</name><memory>1024</memory>\
                     <os><type>hvm</type></os></domain>",
                )
                .unwrap(),
            )
        });
        let mut e = Entry::new("x".into(), Uuid::default(), config);
        e.state = state;
        e.autostart = autostart;
        e
    }

    #[test]
    fn each_pair_filters_only_when_one_side_is_asked() {
        let off = entry(true, DomainState::Shutoff, true);
        assert!(list_filter(&off, 0));
        assert!(list_filter(&off, lf::ACTIVE | lf::INACTIVE));
        assert!(!list_filter(&off, lf::ACTIVE));
        assert!(list_filter(&off, lf::INACTIVE | lf::PERSISTENT));
        assert!(!list_filter(&off, lf::TRANSIENT));
        assert!(list_filter(&off, lf::AUTOSTART));
        assert!(!list_filter(&off, lf::NO_AUTOSTART));
        assert!(list_filter(&off, lf::SHUTOFF));
        assert!(!list_filter(&off, lf::RUNNING | lf::PAUSED));
        assert!(list_filter(&off, lf::NO_MANAGEDSAVE | lf::NO_SNAPSHOT));
        assert!(!list_filter(&off, lf::HAS_SNAPSHOT));
        let transient = entry(false, DomainState::Paused, false);
        assert!(list_filter(&transient, lf::TRANSIENT | lf::PAUSED));
        assert!(!list_filter(&transient, lf::PERSISTENT));
    }
}
