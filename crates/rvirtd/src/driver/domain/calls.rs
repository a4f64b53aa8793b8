//! The domain group of the procedure table: each procedure to the domain
//! driver's operation. What is not here answers VIR_ERR_NO_SUPPORT.

use rvirt_remote::calls::*;
use rvirt_remote::consts::{
    affect, list_flags, shutdown_modes as sm, start_flags as sf, xml_flags, REMOTE_DOMAIN_LIST_MAX,
    VIR_DOMAIN_DESTROY_GRACEFUL, VIR_DOMAIN_UNDEFINE_ALL,
};
use rvirt_remote::error::{code, from};
use rvirt_remote::procedures::DomainCalls;
use rvirt_remote::xdr::{CharList, Opaque};
use rvirt_remote::{NonnullDomain, RemoteError};

use super::edit::DeviceEdit;
use super::DomainDriver;
use crate::driver::host::info as hostinfo;
use crate::server::router::Call;

fn dom_ret(dom: NonnullDomain) -> Result<DomainRet, RemoteError> {
    Ok(DomainRet { dom })
}

/// libvirt's `virCheckFlags` with the QEMU driver's function name.
fn flags(flags: u32, supported: u32, function: &str) -> Result<(), RemoteError> {
    RemoteError::check_flags(flags, supported, function)
}

/// The guest-agent mode of shutdown and reboot. rvirt serves no guest
/// agent (the live XML shows no channel), so the agent alone is refused as
/// libvirt refuses it without one; with ACPI beside it, ACPI is used.
fn acpi_or_refuse(modes: u32) -> Result<(), RemoteError> {
    if modes & sm::GUEST_AGENT != 0 && modes & sm::ACPI_POWER_BTN == 0 {
        return Err(agent_not_configured());
    }
    Ok(())
}

/// libvirt's answer to an agent request on a domain with no agent
/// channel (VIR_ERR_ARGUMENT_UNSUPPORTED).
pub fn agent_not_configured() -> RemoteError {
    RemoteError::new(
        code::ARGUMENT_UNSUPPORTED,
        from::QEMU,
        Some("QEMU guest agent is not configured"),
    )
}

impl<'a> DomainCalls<Call<'a>> for DomainDriver {
    // ---- Lists and lookups ----

    fn connect_list_all_domains(
        &self,
        _cx: &Call<'a>,
        a: ConnectListAllDomainsArgs,
    ) -> Result<ConnectListAllDomainsRet, RemoteError> {
        let doms = self.list_all(a.flags);
        let ret = doms.len() as u32;
        let domains = if a.need_results != 0 {
            doms
        } else {
            Vec::new()
        };
        Ok(ConnectListAllDomainsRet { domains, ret })
    }

    fn connect_num_of_domains(&self, _cx: &Call<'a>, _a: ()) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.list_all(list_flags::ACTIVE).len() as i32,
        })
    }

    fn connect_list_domains(
        &self,
        _cx: &Call<'a>,
        a: ConnectListDomainsArgs,
    ) -> Result<ConnectListDomainsRet, RemoteError> {
        let max = a.maxids.clamp(0, REMOTE_DOMAIN_LIST_MAX as i32) as usize;
        let mut ids: Vec<i32> = self
            .list_all(list_flags::ACTIVE)
            .into_iter()
            .map(|h| h.id)
            .collect();
        ids.sort_unstable();
        ids.truncate(max);
        Ok(ConnectListDomainsRet { ids })
    }

    fn connect_num_of_defined_domains(
        &self,
        _cx: &Call<'a>,
        _a: (),
    ) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.list_all(list_flags::INACTIVE).len() as i32,
        })
    }

    fn connect_list_defined_domains(
        &self,
        _cx: &Call<'a>,
        a: ConnectListDefinedDomainsArgs,
    ) -> Result<ConnectListDefinedDomainsRet, RemoteError> {
        let max = a.maxnames.clamp(0, REMOTE_DOMAIN_LIST_MAX as i32) as usize;
        let mut names: Vec<String> = self
            .list_all(list_flags::INACTIVE)
            .into_iter()
            .map(|h| h.name)
            .collect();
        names.truncate(max);
        Ok(ConnectListDefinedDomainsRet { names })
    }

    fn domain_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: DomainLookupByNameArgs,
    ) -> Result<DomainRet, RemoteError> {
        dom_ret(self.reg().by_name(&a.name)?.handle())
    }

    fn domain_lookup_by_uuid(
        &self,
        _cx: &Call<'a>,
        a: DomainLookupByUuidArgs,
    ) -> Result<DomainRet, RemoteError> {
        dom_ret(self.reg().by_uuid(&a.uuid)?.handle())
    }

    fn domain_lookup_by_id(
        &self,
        _cx: &Call<'a>,
        a: DomainLookupByIdArgs,
    ) -> Result<DomainRet, RemoteError> {
        dom_ret(self.reg().by_id(a.id)?.handle())
    }

    // ---- Definitions ----

    fn domain_define_xml(
        &self,
        _cx: &Call<'a>,
        a: DomainDefineXmlArgs,
    ) -> Result<DomainRet, RemoteError> {
        dom_ret(self.define(&a.xml)?)
    }

    fn domain_define_xml_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainDefineXmlFlagsArgs,
    ) -> Result<DomainRet, RemoteError> {
        // VALIDATE: rvirt validates every definition against its model.
        flags(a.flags, 1, "qemuDomainDefineXMLFlags")?;
        dom_ret(self.define(&a.xml)?)
    }

    fn domain_undefine(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.undefine(&a.dom)
    }

    fn domain_undefine_flags(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        // Managed save, snapshot/checkpoint metadata, NVRAM, TPM: rvirt
        // keeps none, so removing (or keeping) them is already done.
        flags(a.flags, VIR_DOMAIN_UNDEFINE_ALL, "qemuDomainUndefineFlags")?;
        self.undefine(&a.dom)
    }

    fn domain_get_autostart(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainGetAutostartRet, RemoteError> {
        let autostart = i32::from(self.reg().resolve(&a.dom)?.autostart);
        Ok(DomainGetAutostartRet { autostart })
    }

    fn domain_set_autostart(
        &self,
        _cx: &Call<'a>,
        a: DomainSetAutostartArgs,
    ) -> Result<(), RemoteError> {
        self.set_autostart(&a.dom, a.autostart != 0)
    }

    // ---- Device and resource edits ----

    fn domain_attach_device(&self, _cx: &Call<'a>, a: DomainDeviceArgs) -> Result<(), RemoteError> {
        // libvirt's virDomainAttachDevice is the live flavour.
        self.edit_device(&a.dom, &a.xml, affect::LIVE, DeviceEdit::Attach)
    }

    fn domain_attach_device_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainDeviceFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.edit_device(&a.dom, &a.xml, a.flags, DeviceEdit::Attach)
    }

    fn domain_detach_device(&self, _cx: &Call<'a>, a: DomainDeviceArgs) -> Result<(), RemoteError> {
        self.edit_device(&a.dom, &a.xml, affect::LIVE, DeviceEdit::Detach)
    }

    fn domain_detach_device_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainDeviceFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.edit_device(&a.dom, &a.xml, a.flags, DeviceEdit::Detach)
    }

    fn domain_update_device_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainDeviceFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.edit_device(&a.dom, &a.xml, a.flags, DeviceEdit::Update)
    }

    fn domain_set_memory(&self, _cx: &Call<'a>, a: DomainSetMemoryArgs) -> Result<(), RemoteError> {
        self.set_memory(&a.dom, a.memory, affect::LIVE, "qemuDomainSetMemory")
    }

    fn domain_set_max_memory(
        &self,
        _cx: &Call<'a>,
        a: DomainSetMemoryArgs,
    ) -> Result<(), RemoteError> {
        // virDomainSetMaxMemory: the maximum, of the current definition.
        self.set_memory(&a.dom, a.memory, 4, "qemuDomainSetMaxMemory")
    }

    fn domain_set_memory_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainSetMemoryFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.set_memory(&a.dom, a.memory, a.flags, "qemuDomainSetMemoryFlags")
    }

    fn domain_set_vcpus(&self, _cx: &Call<'a>, a: DomainSetVcpusArgs) -> Result<(), RemoteError> {
        self.set_vcpus(&a.dom, a.nvcpus, affect::LIVE, "qemuDomainSetVcpus")
    }

    fn domain_set_vcpus_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainSetVcpusFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.set_vcpus(&a.dom, a.nvcpus, a.flags, "qemuDomainSetVcpusFlags")
    }

    /// No job (migration, dump, save) ever runs: libvirt's answer then.
    fn domain_get_job_info(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainGetJobInfoRet, RemoteError> {
        self.reg().resolve(&a.dom)?;
        Ok(DomainGetJobInfoRet {
            type_: 0,
            time_elapsed: 0,
            time_remaining: 0,
            data_total: 0,
            data_processed: 0,
            data_remaining: 0,
            mem_total: 0,
            mem_processed: 0,
            mem_remaining: 0,
            file_total: 0,
            file_processed: 0,
            file_remaining: 0,
        })
    }

    fn domain_block_stats(
        &self,
        _cx: &Call<'a>,
        a: DomainBlockStatsArgs,
    ) -> Result<DomainBlockStatsRet, RemoteError> {
        let (_, run) = self.running(&a.dom)?;
        let [rd_req, rd_bytes, wr_req, wr_bytes, errs] =
            super::blockstats::disk_stats(&run.live(), &run.qmp, &a.path)
                .ok_or_else(|| RemoteError::invalid_arg(&format!("invalid path: {}", a.path)))?;
        Ok(DomainBlockStatsRet {
            rd_req,
            rd_bytes,
            wr_req,
            wr_bytes,
            errs,
        })
    }

    /// A NIC's counters as libvirt reads them: its host tap's, named by the
    /// tap or the guest MAC, with receive and transmit swapped (what the
    /// tap sends, the guest receives).
    fn domain_interface_stats(
        &self,
        _cx: &Call<'a>,
        a: DomainInterfaceStatsArgs,
    ) -> Result<DomainInterfaceStatsRet, RemoteError> {
        let (_, run) = self.running(&a.dom)?;
        let unknown = || {
            RemoteError::invalid_arg(&format!(
                "invalid path, '{}' is not a known interface",
                a.device
            ))
        };
        let tap = run
            .live()
            .devices
            .interfaces
            .iter()
            .find(|i| {
                i.target_dev.as_deref() == Some(a.device.as_str())
                    || i.mac
                        .as_ref()
                        .is_some_and(|m| m.to_string().eq_ignore_ascii_case(&a.device))
            })
            .and_then(|i| i.target_dev.clone())
            .ok_or_else(unknown)?;
        // /proc/net/dev, as libvirt reads it: the counters of this
        // process's network namespace, where rvirtd made the tap.
        let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
        let v: Vec<i64> = dev
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{tap}:")))
            .ok_or_else(unknown)?
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let col = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(DomainInterfaceStatsRet {
            rx_bytes: col(8),
            rx_packets: col(9),
            rx_errs: col(10),
            rx_drop: col(11),
            tx_bytes: col(0),
            tx_packets: col(1),
            tx_errs: col(2),
            tx_drop: col(3),
        })
    }

    /// `virsh dommemstat`: the balloon's size (QMP `query-balloon`) and
    /// the VMM's resident set, in KiB, as libvirt gives them without
    /// the guest's balloon statistics (rvirt-vmm does not serve those yet).
    fn domain_memory_stats(
        &self,
        _cx: &Call<'a>,
        a: DomainMemoryStatsArgs,
    ) -> Result<DomainMemoryStatsRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainMemoryStats")?;
        let (_, run) = self.running(&a.dom)?;
        use super::memstats::{self, tag};
        // libvirt's order: the balloon's size, the guest's statistics
        // (with a balloon), then the VMM's resident set.
        let actual = run
            .qmp
            .execute("query-balloon", None)
            .ok()
            .and_then(|v| v["actual"].as_u64())
            .map_or_else(|| run.memory_kib(), |b| b / 1024);
        let mut stats = vec![DomainMemoryStat {
            tag: tag::ACTUAL_BALLOON,
            val: actual,
        }];
        if memstats::has_balloon(&run.live()) {
            stats.extend(memstats::guest(&run.qmp));
        }
        let rss = std::fs::read_to_string(format!("/proc/{}/statm", run.pid()))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        if let Some(pages) = rss {
            stats.push(DomainMemoryStat {
                tag: tag::RSS,
                val: pages * 4,
            });
        }
        stats.truncate(a.max_stats as usize);
        Ok(DomainMemoryStatsRet { stats })
    }

    fn domain_set_memory_stats_period(
        &self,
        _cx: &Call<'a>,
        a: DomainSetMemoryStatsPeriodArgs,
    ) -> Result<(), RemoteError> {
        self.set_memory_stats_period(&a.dom, a.period, a.flags)
    }

    // ---- Snapshots (external, disk-only: snapshot.rs) ----

    fn domain_snapshot_lookup_by_name(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotLookupByNameArgs,
    ) -> Result<DomainSnapshotRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainSnapshotLookupByName")?;
        let snap = self.snapshot_lookup(&a.dom, &a.name)?;
        Ok(DomainSnapshotRet { snap })
    }

    fn domain_list_all_snapshots(
        &self,
        _cx: &Call<'a>,
        a: DomainListAllSnapshotsArgs,
    ) -> Result<DomainListAllSnapshotsRet, RemoteError> {
        let all = self.snapshot_list(&a.dom, a.flags)?;
        let ret = all.len() as i32;
        let snapshots = if a.need_results != 0 { all } else { Vec::new() };
        Ok(DomainListAllSnapshotsRet { snapshots, ret })
    }

    fn domain_snapshot_create_xml(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotCreateXmlArgs,
    ) -> Result<DomainSnapshotRet, RemoteError> {
        let snap = self.snapshot_create(&a.dom, &a.xml_desc, a.flags)?;
        Ok(DomainSnapshotRet { snap })
    }

    fn domain_snapshot_get_xml_desc(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<XmlRet, RemoteError> {
        // SECURE (1): the XML holds no secrets.
        flags(a.flags, 1, "qemuDomainSnapshotGetXMLDesc")?;
        Ok(XmlRet {
            xml: self.snapshot_get_xml(&a.snap)?,
        })
    }

    fn domain_has_current_snapshot(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainHasCurrentSnapshot")?;
        Ok(NumRet {
            num: i32::from(self.snapshot_current(&a.dom)?.is_some()),
        })
    }

    fn domain_snapshot_current(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainSnapshotRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainSnapshotCurrent")?;
        match self.snapshot_current(&a.dom)? {
            Some(snap) => Ok(DomainSnapshotRet { snap }),
            None => Err(RemoteError::new(
                code::NO_DOMAIN_SNAPSHOT,
                from::DOMAIN_SNAPSHOT,
                Some("the domain does not have a current snapshot"),
            )),
        }
    }

    fn domain_snapshot_delete(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<(), RemoteError> {
        self.snapshot_delete(&a.snap, a.flags)
    }

    fn domain_snapshot_get_parent(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<DomainSnapshotRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainSnapshotGetParent")?;
        Ok(DomainSnapshotRet {
            snap: self.snapshot_parent(&a.snap)?,
        })
    }

    fn domain_snapshot_num_children(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        // DESCENDANTS (1) and the filters, which select all of rvirt's.
        flags(a.flags, 0x7ff, "qemuDomainSnapshotNumChildren")?;
        Ok(NumRet {
            num: self.snapshot_children(&a.snap, a.flags & 1 != 0)?.len() as i32,
        })
    }

    fn domain_snapshot_list_all_children(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotListAllChildrenArgs,
    ) -> Result<DomainListAllSnapshotsRet, RemoteError> {
        flags(a.flags, 0x7ff, "qemuDomainSnapshotListAllChildren")?;
        let all = self.snapshot_children(&a.snapshot, a.flags & 1 != 0)?;
        let ret = all.len() as i32;
        let snapshots = if a.need_results != 0 { all } else { Vec::new() };
        Ok(DomainListAllSnapshotsRet { snapshots, ret })
    }

    fn domain_snapshot_is_current(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainSnapshotIsCurrent")?;
        Ok(NumRet {
            num: i32::from(self.snapshot_is_current(&a.snap)?),
        })
    }

    fn domain_snapshot_has_metadata(
        &self,
        _cx: &Call<'a>,
        a: DomainSnapshotFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainSnapshotHasMetadata")?;
        self.snapshot_lookup(&a.snap.dom, &a.snap.name)?;
        Ok(NumRet { num: 1 })
    }

    // ---- Block jobs (blockjob.rs) ----

    fn domain_block_commit(
        &self,
        _cx: &Call<'a>,
        a: DomainBlockCommitArgs,
    ) -> Result<(), RemoteError> {
        self.block_commit(
            &a.dom,
            &a.disk,
            a.base.as_deref(),
            a.top.as_deref(),
            a.bandwidth,
            a.flags,
        )
    }

    fn domain_get_block_job_info(
        &self,
        _cx: &Call<'a>,
        a: DomainBlockJobArgs,
    ) -> Result<DomainGetBlockJobInfoRet, RemoteError> {
        Ok(match self.block_job_info(&a.dom, &a.path, a.flags)? {
            Some((type_, bandwidth, cur, end)) => DomainGetBlockJobInfoRet {
                found: 1,
                type_,
                bandwidth,
                cur,
                end,
            },
            None => DomainGetBlockJobInfoRet {
                found: 0,
                type_: 0,
                bandwidth: 0,
                cur: 0,
                end: 0,
            },
        })
    }

    fn domain_block_job_abort(
        &self,
        _cx: &Call<'a>,
        a: DomainBlockJobArgs,
    ) -> Result<(), RemoteError> {
        self.block_job_abort(&a.dom, &a.path, a.flags)
    }

    // ---- Lifecycle ----

    fn domain_create(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.arc().start(&a.dom, false)
    }

    fn domain_create_with_flags(
        &self,
        cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainRet, RemoteError> {
        // BYPASS_CACHE and FORCE_BOOT concern a managed-save image, which
        // rvirt never has: a plain boot honours both.
        flags(
            a.flags,
            sf::PAUSED | sf::AUTODESTROY | sf::BYPASS_CACHE | sf::FORCE_BOOT,
            "qemuDomainCreateWithFlags",
        )?;
        self.arc().start(&a.dom, a.flags & sf::PAUSED != 0)?;
        let handle = self.reg().resolve(&a.dom)?.handle();
        if a.flags & sf::AUTODESTROY != 0 {
            cx.client.autodestroy.borrow_mut().push(handle.clone());
        }
        dom_ret(handle)
    }

    fn domain_create_xml(
        &self,
        cx: &Call<'a>,
        a: DomainCreateXmlArgs,
    ) -> Result<DomainRet, RemoteError> {
        flags(
            a.flags,
            sf::PAUSED | sf::AUTODESTROY | sf::BYPASS_CACHE | sf::FORCE_BOOT | sf::VALIDATE,
            "qemuDomainCreateXML",
        )?;
        let handle = self
            .arc()
            .create_xml(&a.xml_desc, a.flags & sf::PAUSED != 0)?;
        if a.flags & sf::AUTODESTROY != 0 {
            cx.client.autodestroy.borrow_mut().push(handle.clone());
        }
        dom_ret(handle)
    }

    fn domain_destroy(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.destroy(&a.dom)
    }

    fn domain_destroy_flags(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        flags(
            a.flags,
            VIR_DOMAIN_DESTROY_GRACEFUL,
            "qemuDomainDestroyFlags",
        )?;
        self.destroy_with(&a.dom, a.flags & VIR_DOMAIN_DESTROY_GRACEFUL != 0)
    }

    fn domain_shutdown(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.shutdown(&a.dom)
    }

    fn domain_shutdown_flags(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        flags(
            a.flags,
            sm::ACPI_POWER_BTN | sm::GUEST_AGENT,
            "qemuDomainShutdownFlags",
        )?;
        self.reg().resolve(&a.dom)?;
        acpi_or_refuse(a.flags)?;
        self.shutdown(&a.dom)
    }

    fn domain_reboot(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        flags(
            a.flags,
            sm::ACPI_POWER_BTN | sm::GUEST_AGENT,
            "qemuDomainReboot",
        )?;
        self.reg().resolve(&a.dom)?;
        acpi_or_refuse(a.flags)?;
        self.reboot(&a.dom)
    }

    fn domain_reset(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        flags(a.flags, 0, "qemuDomainReset")?;
        self.reset(&a.dom)
    }

    fn domain_inject_nmi(&self, _cx: &Call<'a>, a: DomainFlagsArgs) -> Result<(), RemoteError> {
        flags(a.flags, 0, "qemuDomainInjectNMI")?;
        self.inject_nmi(&a.dom)
    }

    fn domain_suspend(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.suspend(&a.dom)
    }

    fn domain_resume(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<(), RemoteError> {
        self.resume(&a.dom)
    }

    // ---- Information ----

    fn domain_get_info(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainGetInfoRet, RemoteError> {
        self.get_info(&a.dom)
    }

    fn domain_get_state(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainGetStateRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainGetState")?;
        let (state, reason) = self.get_state(&a.dom)?;
        Ok(DomainGetStateRet { state, reason })
    }

    fn domain_get_xml_desc(
        &self,
        cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<XmlRet, RemoteError> {
        flags(
            a.flags,
            xml_flags::SECURE | xml_flags::INACTIVE | xml_flags::UPDATE_CPU | xml_flags::MIGRATABLE,
            "qemuDomainGetXMLDesc",
        )?;
        // Passwords are not for read-only connections (libvirt.c).
        if cx.client.read_only.get() && a.flags & xml_flags::SECURE != 0 {
            return Err(RemoteError::new(
                code::OPERATION_DENIED,
                from::NONE,
                Some("virDomainGetXMLDesc with secure flag"),
            ));
        }
        Ok(XmlRet {
            xml: self.xml_desc(&a.dom, a.flags)?,
        })
    }

    fn domain_get_os_type(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<TypeRet, RemoteError> {
        let def = self.reg().resolve(&a.dom)?.current_def();
        let type_ = def.map_or_else(|| "hvm".to_string(), |x| x.os.os_type.clone());
        Ok(TypeRet { type_ })
    }

    fn domain_get_max_memory(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainGetMaxMemoryRet, RemoteError> {
        let def = self.reg().resolve(&a.dom)?.current_def();
        Ok(DomainGetMaxMemoryRet {
            memory: def.map_or(0, |x| x.memory_kib),
        })
    }

    fn domain_get_max_vcpus(&self, _cx: &Call<'a>, a: DomainArgs) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.vcpus_flags(&a.dom, 1 | 4)?,
        })
    }

    fn domain_get_vcpus_flags(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        // LIVE, CONFIG, MAXIMUM, GUEST.
        flags(a.flags, 0xf, "qemuDomainGetVcpusFlags")?;
        Ok(NumRet {
            num: self.vcpus_flags(&a.dom, a.flags)?,
        })
    }

    fn domain_get_vcpus(
        &self,
        _cx: &Call<'a>,
        a: DomainGetVcpusArgs,
    ) -> Result<DomainGetVcpusRet, RemoteError> {
        self.vcpus(&a.dom, a.maxinfo, a.maplen)
    }

    /// Every vCPU may run on every host CPU: rvirt does no pinning.
    fn domain_get_vcpu_pin_info(
        &self,
        _cx: &Call<'a>,
        a: DomainGetVcpuPinInfoArgs,
    ) -> Result<DomainGetVcpuPinInfoRet, RemoteError> {
        let vcpus = {
            let reg = self.reg();
            let e = reg.resolve(&a.dom)?;
            let def = e
                .current_def()
                .ok_or_else(|| RemoteError::internal("domain has no definition"))?;
            def.vcpu.count
        };
        if a.ncpumaps < 1 || !(1..=2048).contains(&a.maplen) {
            return Err(RemoteError::invalid_arg("bad cpumap count or length"));
        }
        let num = vcpus.min(a.ncpumaps as u32);
        let host = hostinfo::cpus();
        let mut maps = Vec::new();
        for _ in 0..num {
            maps.extend(hostinfo::all_cpus_map(host, a.maplen as usize));
        }
        Ok(DomainGetVcpuPinInfoRet {
            cpumaps: Opaque(maps),
            num: num as i32,
        })
    }

    fn domain_is_active(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainIsActiveRet, RemoteError> {
        let active = i32::from(self.reg().resolve(&a.dom)?.is_active());
        Ok(DomainIsActiveRet { active })
    }

    fn domain_is_persistent(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainIsPersistentRet, RemoteError> {
        let persistent = i32::from(self.reg().resolve(&a.dom)?.is_persistent());
        Ok(DomainIsPersistentRet { persistent })
    }

    fn domain_is_updated(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainIsUpdatedRet, RemoteError> {
        self.reg().resolve(&a.dom)?;
        Ok(DomainIsUpdatedRet { updated: 0 })
    }

    fn domain_has_managed_save_image(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainHasManagedSaveImageRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainHasManagedSaveImage")?;
        self.reg().resolve(&a.dom)?;
        Ok(DomainHasManagedSaveImageRet { result: 0 })
    }

    fn domain_snapshot_num(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<NumRet, RemoteError> {
        Ok(NumRet {
            num: self.snapshot_num(&a.dom)?,
        })
    }

    fn domain_get_security_label(
        &self,
        _cx: &Call<'a>,
        a: DomainArgs,
    ) -> Result<DomainGetSecurityLabelRet, RemoteError> {
        self.reg().resolve(&a.dom)?;
        Ok(DomainGetSecurityLabelRet {
            label: CharList::from_c_str(""),
            enforcing: 0,
        })
    }

    fn domain_get_messages(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainGetMessagesRet, RemoteError> {
        // TAINTING, DEPRECATION.
        flags(a.flags, 3, "qemuDomainGetMessages")?;
        self.reg().resolve(&a.dom)?;
        Ok(DomainGetMessagesRet { msgs: Vec::new() })
    }

    fn domain_get_metadata(
        &self,
        _cx: &Call<'a>,
        a: DomainGetMetadataArgs,
    ) -> Result<DomainGetMetadataRet, RemoteError> {
        self.reg().resolve(&a.dom)?;
        Err(RemoteError::new(
            code::NO_DOMAIN_METADATA,
            from::DOMAIN,
            Some("Requested metadata element is not present"),
        ))
    }

    fn connect_get_all_domain_stats(
        &self,
        _cx: &Call<'a>,
        a: ConnectGetAllDomainStatsArgs,
    ) -> Result<ConnectGetAllDomainStatsRet, RemoteError> {
        Ok(ConnectGetAllDomainStatsRet {
            ret_stats: self.all_domain_stats(&a)?,
        })
    }

    fn domain_get_control_info(
        &self,
        _cx: &Call<'a>,
        a: DomainFlagsArgs,
    ) -> Result<DomainGetControlInfoRet, RemoteError> {
        flags(a.flags, 0, "qemuDomainGetControlInfo")?;
        self.reg().resolve(&a.dom)?;
        Ok(DomainGetControlInfoRet {
            state: 0,
            details: 0,
            state_time: 0,
        })
    }

    fn connect_domain_xml_to_native(
        &self,
        _cx: &Call<'a>,
        a: ConnectDomainXmlToNativeArgs,
    ) -> Result<ConnectDomainXmlToNativeRet, RemoteError> {
        Ok(ConnectDomainXmlToNativeRet {
            native_config: self.xml_to_native(&a.native_format, &a.domain_xml)?,
        })
    }

    // ---- Consoles ----

    fn domain_open_console(
        &self,
        cx: &Call<'a>,
        a: DomainOpenConsoleArgs,
    ) -> Result<(), RemoteError> {
        let start_pump =
            self.open_console(&cx.client.streams, &cx.client.sub.outbox, cx.serial, &a)?;
        // The reply goes out before the first data.
        cx.after_reply(start_pump);
        Ok(())
    }

    // ---- Graphics ----

    fn domain_screenshot(
        &self,
        cx: &Call<'a>,
        a: DomainScreenshotArgs,
    ) -> Result<DomainScreenshotRet, RemoteError> {
        let picture = self.screenshot(&a.dom, a.screen, a.flags)?;
        let stream = crate::server::streams::BytesOut::open(
            &cx.client.streams,
            &cx.client.sub.outbox,
            rvirt_remote::Procedure::DomainScreenshot.number(),
            cx.serial,
        );
        // The picture follows the reply, as libvirt streams its file.
        cx.after_reply(move || stream.send(&picture));
        Ok(DomainScreenshotRet {
            mime: Some("image/x-portable-pixmap".into()),
        })
    }

    fn domain_open_graphics_fd(
        &self,
        cx: &Call<'a>,
        a: DomainOpenGraphicsArgs,
    ) -> Result<(), RemoteError> {
        let fd = self.open_graphics_fd(&a.dom, a.idx, a.flags)?;
        cx.reply_fd(fd);
        Ok(())
    }

    fn domain_open_graphics(
        &self,
        cx: &Call<'a>,
        a: DomainOpenGraphicsArgs,
    ) -> Result<(), RemoteError> {
        self.open_graphics(&a.dom, a.idx, cx.passed_fd(0), a.flags)
    }

    // ---- Events ----

    fn connect_domain_event_callback_register_any(
        &self,
        cx: &Call<'a>,
        a: ConnectDomainEventCallbackRegisterAnyArgs,
    ) -> Result<CallbackIdRet, RemoteError> {
        let only = match &a.dom {
            Some(dom) => Some(self.reg().resolve(dom)?.uuid),
            None => None,
        };
        if !(0..=30).contains(&a.event_id) {
            return Err(RemoteError::invalid_arg(&format!(
                "unsupported event ID {}",
                a.event_id
            )));
        }
        let callback_id = self.events.register(&cx.client.sub, a.event_id, only);
        Ok(CallbackIdRet { callback_id })
    }

    fn connect_domain_event_callback_deregister_any(
        &self,
        cx: &Call<'a>,
        a: CallbackIdArgs,
    ) -> Result<(), RemoteError> {
        if !self.events.deregister(&cx.client.sub, a.callback_id) {
            return Err(RemoteError::invalid_arg(&format!(
                "callback ID {} not registered",
                a.callback_id
            )));
        }
        Ok(())
    }

    // ---- Guest addresses ----

    fn domain_interface_addresses(
        &self,
        _cx: &Call<'a>,
        a: DomainInterfaceAddressesArgs,
    ) -> Result<DomainInterfaceAddressesRet, RemoteError> {
        use rvirt_remote::consts::interface_addresses_source as source;
        let live = {
            let reg = self.reg();
            let e = reg.resolve(&a.dom)?;
            match &e.run {
                Some(r) => r.live(),
                None => return Err(RemoteError::operation_invalid("domain is not running")),
            }
        };
        match a.source {
            source::LEASE => {}
            source::AGENT | source::ARP => {
                return Err(RemoteError::new(
                    rvirt_remote::error::code::ARGUMENT_UNSUPPORTED,
                    rvirt_remote::error::from::QEMU,
                    Some(&format!(
                        "source {} is not supported by rvirt: only the DHCP leases (--source lease) are",
                        a.source
                    )),
                ))
            }
            other => {
                return Err(RemoteError::new(
                    rvirt_remote::error::code::ARGUMENT_UNSUPPORTED,
                    rvirt_remote::error::from::QEMU,
                    Some(&format!("Unknown IP address data source {other}")),
                ))
            }
        }
        // As libvirt's qemuDomainGetDHCPInterfaces: the NICs on a virtual
        // network that have a lease, named by their tap.
        let mut ifaces = Vec::new();
        for i in &live.devices.interfaces {
            let (Some(mac), Some(net)) = (i.mac, i.source.as_ref().and_then(|s| s.attr("network")))
            else {
                continue;
            };
            if i.iface_type != "network" {
                continue;
            }
            let leases = self.networks.leases_for(net, mac);
            if leases.is_empty() {
                continue;
            }
            ifaces.push(DomainInterface {
                name: i.target_dev.clone().unwrap_or_default(),
                hwaddr: Some(mac.to_string()),
                addrs: leases
                    .into_iter()
                    .map(|l| DomainIpAddr {
                        type_: l.type_,
                        addr: l.ipaddr,
                        prefix: l.prefix,
                    })
                    .collect(),
            });
        }
        Ok(DomainInterfaceAddressesRet { ifaces })
    }
}

impl DomainDriver {
    /// CONNECT_DOMAIN_XML_TO_NATIVE: the rvirt-vmm command line a start
    /// would run (with the paths the VMM would open; a start passes the
    /// monitor and taps by descriptor instead), one option per line as
    /// libvirt prints it.
    pub fn xml_to_native(&self, format: &str, xml: &str) -> Result<String, RemoteError> {
        if format != "qemu-argv" {
            return Err(RemoteError::new(
                code::CONFIG_UNSUPPORTED,
                from::QEMU,
                Some(&format!("Unsupported config type {format}")),
            ));
        }
        let mut def = super::definitions::parse(xml)?;
        def.fill_in();
        let argv =
            rvirt_domain::derive_argv(&def, &self.tree.vmm_paths(&def.name)).map_err(|e| {
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
