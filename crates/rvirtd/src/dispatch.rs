//! One CALL in, one REPLY out: maps each procedure to the daemon's
//! operation. Procedures rvirt does not serve answer VIR_ERR_NO_SUPPORT.

use std::sync::Arc;

use rvirt_remote::calls::*;
use rvirt_remote::consts::{version_number, REMOTE_DOMAIN_LIST_MAX, VIR_DOMAIN_START_PAUSED};
use rvirt_remote::error::{code, from};
use rvirt_remote::server::{error_reply, reply};
use rvirt_remote::uri::Mode;
use rvirt_remote::xdr::{CharList, Opaque};
use rvirt_remote::{Args, Header, Message, Procedure, RemoteError};

use crate::daemon::Daemon;
use crate::events::Subscriber;
use crate::hostinfo;

/// libvirt's version that rvirtd's protocol matches (virsh prints it for
/// `version --daemon`).
const LIB_VERSION: u64 = 9_000_000;

/// Answers the CALL with header `h` and arguments `args`.
pub fn call(d: &Arc<Daemon>, sub: &Subscriber, h: &Header, args: Args) -> Message {
    let p = args.procedure();
    match handle(d, sub, h.serial, args) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(procedure = p.name(), error = %e, "call failed");
            error_reply(h, &e)
        }
    }
}

fn dom_ret(p: Procedure, serial: u32, dom: rvirt_remote::NonnullDomain) -> Message {
    reply(p, serial, &DomainRet { dom })
}

fn handle(
    d: &Arc<Daemon>,
    sub: &Subscriber,
    serial: u32,
    args: Args,
) -> Result<Message, RemoteError> {
    let p = args.procedure();
    let ok = |m: Message| -> Result<Message, RemoteError> { Ok(m) };
    match args {
        Args::ConnectClose(()) => ok(reply(p, serial, &())),
        Args::ConnectGetType(()) => ok(reply(
            p,
            serial,
            &TypeRet {
                type_: "QEMU".into(),
            },
        )),
        Args::ConnectGetVersion(()) => ok(reply(
            p,
            serial,
            &ConnectGetVersionRet {
                hv_ver: vmm_version(),
            },
        )),
        Args::ConnectGetLibVersion(()) => ok(reply(
            p,
            serial,
            &ConnectGetLibVersionRet {
                lib_ver: LIB_VERSION,
            },
        )),
        Args::ConnectGetHostname(()) => ok(reply(
            p,
            serial,
            &ConnectGetHostnameRet {
                hostname: hostinfo::hostname(),
            },
        )),
        Args::ConnectGetUri(()) => {
            let uri = match d.tree.mode {
                Mode::System => "qemu:///system",
                Mode::Session => "qemu:///session",
            };
            ok(reply(p, serial, &ConnectGetUriRet { uri: uri.into() }))
        }
        Args::ConnectGetMaxVcpus(_) => ok(reply(
            p,
            serial,
            &ConnectGetMaxVcpusRet {
                max_vcpus: rvirt_domain::MAX_VCPUS as i32,
            },
        )),
        Args::ConnectGetCapabilities(()) => ok(reply(
            p,
            serial,
            &CapabilitiesRet {
                capabilities: crate::capabilities::capabilities_xml(&d.vmm),
            },
        )),
        Args::ConnectGetDomainCapabilities(a) => ok(reply(
            p,
            serial,
            &CapabilitiesRet {
                capabilities: crate::capabilities::domain_capabilities_xml(&d.vmm, &a)?,
            },
        )),
        Args::NodeGetInfo(()) => ok(reply(p, serial, &hostinfo::node_info())),
        Args::NodeGetCpuMap(a) => {
            let n = hostinfo::cpus();
            let map = if a.need_map != 0 {
                hostinfo::all_cpus_map(n, hostinfo::cpu_map_len(n))
            } else {
                Vec::new()
            };
            ok(reply(
                p,
                serial,
                &NodeGetCpuMapRet {
                    cpumap: Opaque(map),
                    online: if a.need_online != 0 { n } else { 0 },
                    ret: n as i32,
                },
            ))
        }
        Args::NodeGetSecurityModel(()) => ok(reply(
            p,
            serial,
            &NodeGetSecurityModelRet {
                model: CharList::from_c_str("none"),
                doi: CharList::from_c_str("0"),
            },
        )),

        // ---- Lists and lookups ----
        Args::ConnectListAllDomains(a) => {
            let doms = d.list_all(a.flags);
            let count = doms.len() as u32;
            let domains = if a.need_results != 0 {
                doms
            } else {
                Vec::new()
            };
            ok(reply(
                p,
                serial,
                &ConnectListAllDomainsRet {
                    domains,
                    ret: count,
                },
            ))
        }
        Args::ConnectNumOfDomains(()) => ok(reply(
            p,
            serial,
            &NumRet {
                num: d.list_all(rvirt_remote::consts::list_flags::ACTIVE).len() as i32,
            },
        )),
        Args::ConnectListDomains(a) => {
            let max = a.maxids.clamp(0, REMOTE_DOMAIN_LIST_MAX as i32) as usize;
            let mut ids: Vec<i32> = d
                .list_all(rvirt_remote::consts::list_flags::ACTIVE)
                .into_iter()
                .map(|h| h.id)
                .collect();
            ids.sort_unstable();
            ids.truncate(max);
            ok(reply(p, serial, &ConnectListDomainsRet { ids }))
        }
        Args::ConnectNumOfDefinedDomains(()) => ok(reply(
            p,
            serial,
            &NumRet {
                num: d.list_all(rvirt_remote::consts::list_flags::INACTIVE).len() as i32,
            },
        )),
        Args::ConnectListDefinedDomains(a) => {
            let max = a.maxnames.clamp(0, REMOTE_DOMAIN_LIST_MAX as i32) as usize;
            let mut names: Vec<String> = d
                .list_all(rvirt_remote::consts::list_flags::INACTIVE)
                .into_iter()
                .map(|h| h.name)
                .collect();
            names.truncate(max);
            ok(reply(p, serial, &ConnectListDefinedDomainsRet { names }))
        }
        Args::DomainLookupByName(a) => {
            let h = d.reg().by_name(&a.name)?.handle();
            ok(dom_ret(p, serial, h))
        }
        Args::DomainLookupByUuid(a) => {
            let h = d.reg().by_uuid(&a.uuid)?.handle();
            ok(dom_ret(p, serial, h))
        }
        Args::DomainLookupById(a) => {
            let h = d.reg().by_id(a.id)?.handle();
            ok(dom_ret(p, serial, h))
        }

        // ---- Definitions ----
        Args::DomainDefineXml(a) => ok(dom_ret(p, serial, d.define(&a.xml)?)),
        Args::DomainDefineXmlFlags(a) => ok(dom_ret(p, serial, d.define(&a.xml)?)),
        Args::DomainUndefine(a) => {
            d.undefine(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainUndefineFlags(a) => {
            d.undefine(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainGetAutostart(a) => {
            let autostart = i32::from(d.reg().resolve(&a.dom)?.autostart);
            ok(reply(p, serial, &DomainGetAutostartRet { autostart }))
        }
        Args::DomainSetAutostart(a) => {
            d.set_autostart(&a.dom, a.autostart != 0)?;
            ok(reply(p, serial, &()))
        }

        // ---- Lifecycle ----
        Args::DomainCreate(a) => {
            d.start(&a.dom, false)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainCreateWithFlags(a) => {
            d.start(&a.dom, a.flags & VIR_DOMAIN_START_PAUSED != 0)?;
            let h = d.reg().resolve(&a.dom)?.handle();
            ok(dom_ret(p, serial, h))
        }
        Args::DomainCreateXml(a) => {
            let h = d.create_xml(&a.xml_desc, a.flags & VIR_DOMAIN_START_PAUSED != 0)?;
            ok(dom_ret(p, serial, h))
        }
        Args::DomainDestroy(a) => {
            d.destroy(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainDestroyFlags(a) => {
            d.destroy(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainShutdown(a) => {
            d.shutdown(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainShutdownFlags(a) => {
            d.shutdown(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainReboot(a) => {
            d.reboot(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainSuspend(a) => {
            d.suspend(&a.dom)?;
            ok(reply(p, serial, &()))
        }
        Args::DomainResume(a) => {
            d.resume(&a.dom)?;
            ok(reply(p, serial, &()))
        }

        // ---- Information ----
        Args::DomainGetInfo(a) => ok(reply(p, serial, &d.get_info(&a.dom)?)),
        Args::DomainGetState(a) => {
            let (state, reason) = d.get_state(&a.dom)?;
            ok(reply(p, serial, &DomainGetStateRet { state, reason }))
        }
        Args::DomainGetXmlDesc(a) => {
            let xml = d.xml_desc(&a.dom, a.flags)?;
            ok(reply(p, serial, &XmlRet { xml }))
        }
        Args::DomainGetOsType(a) => {
            let def = d.reg().resolve(&a.dom)?.current_def();
            let type_ = def.map_or_else(|| "hvm".to_string(), |x| x.os.os_type.clone());
            ok(reply(p, serial, &TypeRet { type_ }))
        }
        Args::DomainGetMaxMemory(a) => {
            let def = d.reg().resolve(&a.dom)?.current_def();
            let memory = def.map_or(0, |x| x.memory_kib);
            ok(reply(p, serial, &DomainGetMaxMemoryRet { memory }))
        }
        Args::DomainGetMaxVcpus(a) => {
            let num = d.vcpus_flags(&a.dom, 1 | 4)?;
            ok(reply(p, serial, &NumRet { num }))
        }
        Args::DomainGetVcpusFlags(a) => {
            let num = d.vcpus_flags(&a.dom, a.flags)?;
            ok(reply(p, serial, &NumRet { num }))
        }
        Args::DomainGetVcpus(a) => ok(reply(p, serial, &d.vcpus(&a.dom, a.maxinfo, a.maplen)?)),
        Args::DomainIsActive(a) => {
            let active = i32::from(d.reg().resolve(&a.dom)?.is_active());
            ok(reply(p, serial, &DomainIsActiveRet { active }))
        }
        Args::DomainIsPersistent(a) => {
            let persistent = i32::from(d.reg().resolve(&a.dom)?.is_persistent());
            ok(reply(p, serial, &DomainIsPersistentRet { persistent }))
        }
        Args::DomainIsUpdated(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(p, serial, &DomainIsUpdatedRet { updated: 0 }))
        }
        Args::DomainHasManagedSaveImage(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(
                p,
                serial,
                &DomainHasManagedSaveImageRet { result: 0 },
            ))
        }
        Args::DomainSnapshotNum(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(p, serial, &NumRet { num: 0 }))
        }
        Args::DomainGetSecurityLabel(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(
                p,
                serial,
                &DomainGetSecurityLabelRet {
                    label: CharList::from_c_str(""),
                    enforcing: 0,
                },
            ))
        }
        Args::DomainGetMessages(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(p, serial, &DomainGetMessagesRet { msgs: Vec::new() }))
        }
        Args::DomainGetMetadata(a) => {
            d.reg().resolve(&a.dom)?;
            Err(RemoteError::new(
                code::NO_DOMAIN_METADATA,
                from::DOMAIN,
                Some("Requested metadata element is not present"),
            ))
        }
        Args::ConnectGetAllDomainStats(a) => {
            let ret_stats = d.all_domain_stats(&a)?;
            ok(reply(p, serial, &ConnectGetAllDomainStatsRet { ret_stats }))
        }
        Args::DomainGetControlInfo(a) => {
            d.reg().resolve(&a.dom)?;
            ok(reply(
                p,
                serial,
                &DomainGetControlInfoRet {
                    state: 0,
                    details: 0,
                    state_time: 0,
                },
            ))
        }
        Args::ConnectDomainXmlToNative(a) => {
            let native_config = d.xml_to_native(&a.native_format, &a.domain_xml)?;
            ok(reply(
                p,
                serial,
                &ConnectDomainXmlToNativeRet { native_config },
            ))
        }

        // ---- Events ----
        Args::ConnectDomainEventCallbackRegisterAny(a) => {
            let only = match &a.dom {
                Some(dom) => Some(d.reg().resolve(dom)?.uuid),
                None => None,
            };
            if !(0..=30).contains(&a.event_id) {
                return Err(RemoteError::invalid_arg(&format!(
                    "unsupported event ID {}",
                    a.event_id
                )));
            }
            let callback_id = d.events.register(sub, a.event_id, only);
            ok(reply(p, serial, &CallbackIdRet { callback_id }))
        }
        Args::ConnectDomainEventCallbackDeregisterAny(a) => {
            if !d.events.deregister(sub, a.callback_id) {
                return Err(RemoteError::invalid_arg(&format!(
                    "callback ID {} not registered",
                    a.callback_id
                )));
            }
            ok(reply(p, serial, &()))
        }

        // ---- Objects rvirt does not have: empty lists ----
        Args::ConnectListAllNetworks(_) => ok(reply(
            p,
            serial,
            &ConnectListAllNetworksRet {
                nets: Vec::new(),
                ret: 0,
            },
        )),
        Args::ConnectListAllInterfaces(_) => ok(reply(
            p,
            serial,
            &ConnectListAllInterfacesRet {
                ifaces: Vec::new(),
                ret: 0,
            },
        )),
        Args::ConnectListAllNodeDevices(_) => ok(reply(
            p,
            serial,
            &ConnectListAllNodeDevicesRet {
                devices: Vec::new(),
                ret: 0,
            },
        )),
        Args::ConnectListAllStoragePools(_) => ok(reply(
            p,
            serial,
            &ConnectListAllStoragePoolsRet {
                pools: Vec::new(),
                ret: 0,
            },
        )),

        other => Err(RemoteError::no_support(&other.procedure().api_name())),
    }
}

/// rvirt-vmm's version as CONNECT_GET_VERSION carries it.
fn vmm_version() -> u64 {
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.').map(|x| x.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    version_number(a, b, c)
}

impl Daemon {
    /// CONNECT_DOMAIN_XML_TO_NATIVE: the rvirt-vmm command line a start
    /// would run, one option per line as libvirt prints it.
    pub fn xml_to_native(&self, format: &str, xml: &str) -> Result<String, RemoteError> {
        if format != "qemu-argv" {
            return Err(RemoteError::new(
                code::CONFIG_UNSUPPORTED,
                from::QEMU,
                Some(&format!("Unsupported config type {format}")),
            ));
        }
        let mut def = crate::definitions::parse(xml)?;
        def.fill_in();
        let paths = rvirt_domain::RuntimePaths {
            monitor_socket: self.tree.runtime_dir(&def.name).join("monitor.sock"),
            pidfile: self.tree.runtime_dir(&def.name).join("vmm.pid"),
            log_file: self.tree.log_file(&def.name),
        };
        let argv = rvirt_domain::derive_argv(&def, &paths).map_err(|e| {
            RemoteError::new(code::CONFIG_UNSUPPORTED, from::QEMU, Some(&e.to_string()))
        })?;
        Ok(format_argv(&self.vmm.to_string_lossy(), &argv.args))
    }
}

/// `prog \` then `-opt value \` lines, values shell-quoted when needed.
fn format_argv(prog: &str, args: &[String]) -> String {
    let mut lines = vec![quote(prog)];
    let mut i = 0;
    while i < args.len() {
        let mut line = quote(&args[i]);
        if args[i].starts_with('-') && args.get(i + 1).is_some_and(|v| !v.starts_with('-')) {
            line.push(' ');
            line.push_str(&quote(&args[i + 1]));
            i += 1;
        }
        lines.push(line);
        i += 1;
    }
    let mut out = lines.join(" \\\n");
    out.push('\n');
    out
}

fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:@+%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_lines() {
        let args: Vec<String> = ["-name", "guest=a", "-S", "-append", "console=ttyS0 quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            format_argv("/usr/bin/rvirt-vmm", &args),
            "/usr/bin/rvirt-vmm \\\n-name guest=a \\\n-S \\\n-append 'console=ttyS0 quiet'\n"
        );
    }
}
