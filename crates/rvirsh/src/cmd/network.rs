//! The network commands, as virsh 9.0's `virsh-network.c` prints them, and
//! `domifaddr` (`virsh-domain-monitor.c`).

use std::time::{Duration, Instant, SystemTime};

use rvirt_remote::calls::{
    CallbackIdArgs, ConnectListAllArgs, ConnectNetworkEventRegisterAnyArgs,
    DomainInterfaceAddressesArgs, NameArgs, NetworkArgs, NetworkGetDhcpLeasesArgs,
    NetworkGetXmlDescArgs, NetworkSetAutostartArgs, NetworkUpdateArgs, NetworkXmlArgs, UuidArgs,
};
use rvirt_remote::consts::{
    interface_addresses_source, ip_addr_type, network_event, network_list_flags as lf,
    network_update_flags, VIR_NETWORK_EVENT_ID_LIFECYCLE, VIR_NETWORK_XML_INACTIVE,
};
use rvirt_remote::types::NonnullNetwork;
use rvirt_remote::{procs, Args, Uuid};

use super::domain::event::{catch_sigint, interrupted, timestamp};
use super::read_file;
use crate::cli::{NetEventOpts, NetListOpts, NetworkCommand};
use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};
use crate::table::Table;

/// Runs one network command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &NetworkCommand) -> Result<(), CmdError> {
    let name = c.name();
    match c {
        NetworkCommand::NetList(o) => list(s, out, o),
        NetworkCommand::NetInfo { net } => info(s, out, net.get(name)?),
        NetworkCommand::NetUuid { net } => {
            let n = lookup(s, net.get(name)?)?;
            out.print(&format!("{}\n", n.uuid));
            Ok(())
        }
        NetworkCommand::NetName { net } => {
            let arg = net.get(name)?;
            let n = lookup_uuid_only(s, arg)?;
            out.print(&format!("{}\n", n.name));
            Ok(())
        }
        NetworkCommand::NetDumpxml { net, inactive } => {
            let n = lookup(s, net.get(name)?)?;
            let flags = if *inactive {
                VIR_NETWORK_XML_INACTIVE
            } else {
                0
            };
            let xml = s
                .call::<procs::NetworkGetXmlDesc>(&NetworkGetXmlDescArgs { net: n, flags })?
                .xml;
            out.print(&xml);
            Ok(())
        }
        NetworkCommand::NetDefine { file, .. } => {
            let f = file.get(name)?;
            let xml = read_file(f)?;
            let n = s
                .call::<procs::NetworkDefineXml>(&NetworkXmlArgs { xml })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to define network from {f}"))
                })?
                .net;
            out.extra(&format!("Network {} defined from {f}\n", n.name));
            Ok(())
        }
        NetworkCommand::NetCreate { file, .. } => {
            let f = file.get(name)?;
            let xml = read_file(f)?;
            let n = s
                .call::<procs::NetworkCreateXml>(&NetworkXmlArgs { xml })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to create network from {f}"))
                })?
                .net;
            out.extra(&format!("Network {} created from {f}\n", n.name));
            Ok(())
        }
        NetworkCommand::NetStart { net } => {
            let n = lookup(s, net.get(name)?)?;
            s.call::<procs::NetworkCreate>(&NetworkArgs { net: n.clone() })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to start network {}", n.name))
                })?;
            out.extra(&format!("Network {} started\n", n.name));
            Ok(())
        }
        NetworkCommand::NetDestroy { net } => {
            let n = lookup(s, net.get(name)?)?;
            s.call::<procs::NetworkDestroy>(&NetworkArgs { net: n.clone() })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to destroy network {}", n.name))
                })?;
            out.extra(&format!("Network {} destroyed\n", n.name));
            Ok(())
        }
        NetworkCommand::NetUndefine { net } => {
            let n = lookup(s, net.get(name)?)?;
            s.call::<procs::NetworkUndefine>(&NetworkArgs { net: n.clone() })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to undefine network {}", n.name))
                })?;
            out.extra(&format!("Network {} has been undefined\n", n.name));
            Ok(())
        }
        NetworkCommand::NetAutostart { net, disable } => {
            let n = lookup(s, net.get(name)?)?;
            let r = s.call::<procs::NetworkSetAutostart>(&NetworkSetAutostartArgs {
                net: n.clone(),
                autostart: i32::from(!*disable),
            });
            if let Err(e) = r {
                let what = if *disable { "unmark" } else { "mark" };
                return Err(CmdError::from(e).context(format!(
                    "failed to {what} network {} as autostarted",
                    n.name
                )));
            }
            if *disable {
                out.extra(&format!("Network {} unmarked as autostarted\n", n.name));
            } else {
                out.extra(&format!("Network {} marked as autostarted\n", n.name));
            }
            Ok(())
        }
        NetworkCommand::NetUpdate {
            net,
            command,
            section,
            xml,
            parent_index,
            config,
            live,
            current,
        } => update(
            s,
            out,
            net.get(name)?,
            command.as_deref().unwrap_or_default(),
            section.as_deref().unwrap_or_default(),
            xml.as_deref().unwrap_or_default(),
            parent_index.unwrap_or(-1),
            (*config, *live, *current),
        ),
        NetworkCommand::NetDhcpLeases { net, mac } => {
            leases(s, out, net.get(name)?, mac.as_deref())
        }
        NetworkCommand::NetEvent(o) => event(s, out, o),
        NetworkCommand::Domifaddr {
            domain,
            interface,
            full,
            source,
        } => domifaddr(
            s,
            out,
            domain.as_deref().unwrap_or_default(),
            interface.as_deref(),
            *full,
            source.as_deref(),
        ),
    }
}

/// Finds a network as virsh does (`virshCommandOptNetworkBy`): a
/// 36-character argument by UUID first, then by name; the failure is
/// `failed to get network 'x'` over the daemon's last error.
fn lookup(s: &mut Session, arg: &str) -> Result<NonnullNetwork, CmdError> {
    if arg.len() == 36 {
        if let Ok(uuid) = arg.parse::<Uuid>() {
            if let Ok(r) = s.call::<procs::NetworkLookupByUuid>(&UuidArgs { uuid }) {
                return Ok(r.net);
            }
        }
    }
    s.call::<procs::NetworkLookupByName>(&NameArgs { name: arg.into() })
        .map(|r| r.net)
        .map_err(|e| CmdError::from(e).context(format!("failed to get network '{arg}'")))
}

/// `net-name`: by UUID only.
fn lookup_uuid_only(s: &mut Session, arg: &str) -> Result<NonnullNetwork, CmdError> {
    let fail = || CmdError::msg(format!("failed to get network '{arg}'"));
    if arg.len() != 36 {
        return Err(fail());
    }
    let uuid = arg.parse::<Uuid>().map_err(|_| fail())?;
    s.call::<procs::NetworkLookupByUuid>(&UuidArgs { uuid })
        .map(|r| r.net)
        .map_err(|e| CmdError::from(e).context(format!("failed to get network '{arg}'")))
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

fn list(s: &mut Session, out: &Out, o: &NetListOpts) -> Result<(), CmdError> {
    if [o.table, o.name, o.uuid].iter().filter(|&&b| b).count() > 1 {
        return Err(CmdError::msg(
            "Only one argument from --table, --name and --uuid may be specified.",
        ));
    }
    let mut flags = 0;
    if o.inactive {
        flags |= lf::INACTIVE;
    }
    if o.all {
        flags |= lf::INACTIVE | lf::ACTIVE;
    }
    if flags == 0 {
        flags = lf::ACTIVE;
    }
    if o.persistent {
        flags |= lf::PERSISTENT;
    }
    if o.transient {
        flags |= lf::TRANSIENT;
    }
    if o.autostart {
        flags |= lf::AUTOSTART;
    }
    if o.no_autostart {
        flags |= lf::NO_AUTOSTART;
    }
    let mut nets = s
        .call::<procs::ConnectListAllNetworks>(&ConnectListAllArgs {
            need_results: 1,
            flags,
        })
        .map_err(|e| CmdError::from(e).context("Failed to list networks"))?
        .nets;
    nets.sort_by_key(|a| a.name.to_lowercase());
    if o.name || o.uuid {
        for n in &nets {
            if o.uuid {
                out.print(&format!("{}\n", n.uuid));
            } else {
                out.print(&format!("{}\n", n.name));
            }
        }
        return Ok(());
    }
    let mut t = Table::new(&["Name", "State", "Autostart", "Persistent"]);
    for n in &nets {
        let a = NetworkArgs { net: n.clone() };
        let autostart = match s.call::<procs::NetworkGetAutostart>(&a) {
            Ok(r) => yes_no(r.autostart != 0),
            Err(_) => "no autostart",
        };
        let persistent = match s.call::<procs::NetworkIsPersistent>(&a) {
            Ok(r) => yes_no(r.persistent != 0),
            Err(_) => "unknown",
        };
        let active = s
            .call::<procs::NetworkIsActive>(&a)
            .is_ok_and(|r| r.active != 0);
        t.row(&[
            n.name.as_str(),
            if active { "active" } else { "inactive" },
            autostart,
            persistent,
        ]);
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

fn info(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let n = lookup(s, arg)?;
    let a = NetworkArgs { net: n.clone() };
    out.field("Name:", &n.name);
    out.field("UUID:", n.uuid);
    if let Ok(r) = s.call::<procs::NetworkIsActive>(&a) {
        out.field("Active:", yes_no(r.active != 0));
    }
    match s.call::<procs::NetworkIsPersistent>(&a) {
        Ok(r) => out.field("Persistent:", yes_no(r.persistent != 0)),
        Err(_) => out.field("Persistent:", "unknown"),
    }
    match s.call::<procs::NetworkGetAutostart>(&a) {
        Ok(r) => out.field("Autostart:", yes_no(r.autostart != 0)),
        Err(_) => out.field("Autostart:", "no autostart"),
    }
    if let Ok(r) = s.call::<procs::NetworkGetBridgeName>(&a) {
        out.field("Bridge:", r.name);
    }
    Ok(())
}

/// virsh's names of net-update's commands and sections.
fn update_command(c: &str) -> Option<u32> {
    Some(match c {
        "add" | "add-last" => 3,
        "add-first" => 4,
        "delete" => 2,
        "modify" => 1,
        _ => return None,
    })
}

fn update_section(s: &str) -> Option<u32> {
    Some(match s {
        "bridge" => 1,
        "domain" => 2,
        "ip" => 3,
        "ip-dhcp-host" => 4,
        "ip-dhcp-range" => 5,
        "forward" => 6,
        "forward-interface" => 7,
        "forward-pf" => 8,
        "portgroup" => 9,
        "dns-host" => 10,
        "dns-txt" => 11,
        "dns-srv" => 12,
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn update(
    s: &mut Session,
    out: &Out,
    arg: &str,
    command: &str,
    section: &str,
    xml: &str,
    parent_index: i32,
    (config, live, current): (bool, bool, bool),
) -> Result<(), CmdError> {
    if current && (config || live) {
        return Err(CmdError::msg(if config {
            "Options --current and --config are mutually exclusive"
        } else {
            "Options --current and --live are mutually exclusive"
        }));
    }
    let n = lookup(s, arg)?;
    let cmd = update_command(command)
        .ok_or_else(|| CmdError::msg(format!("unrecognized command name '{command}'")))?;
    let sec = update_section(section)
        .ok_or_else(|| CmdError::msg(format!("unrecognized section name '{section}'")))?;
    // The XML itself when it starts with '<', else a file holding it.
    let text = if xml.starts_with('<') {
        xml.to_string()
    } else {
        read_file(xml)?
    };
    let mut flags = network_update_flags::AFFECT_CURRENT;
    if config {
        flags |= network_update_flags::AFFECT_CONFIG;
    }
    if live {
        flags |= network_update_flags::AFFECT_LIVE;
    }
    s.call::<procs::NetworkUpdate>(&NetworkUpdateArgs {
        net: n.clone(),
        command: cmd,
        section: sec,
        parent_index,
        xml: text,
        flags,
    })
    .map_err(|e| CmdError::from(e).context(format!("Failed to update network {}", n.name)))?;
    let what = match (config, live) {
        (true, true) => "persistent config and live state",
        (true, false) => "persistent config",
        (false, true) => "live state",
        (false, false) => {
            if s.call::<procs::NetworkIsActive>(&NetworkArgs { net: n.clone() })
                .is_ok_and(|r| r.active != 0)
            {
                "live state"
            } else {
                "persistent config"
            }
        }
    };
    // virsh's message has no newline of its own: the blank line every
    // command ends with ends it.
    out.extra(&format!("Updated network {} {what}", n.name));
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in local time, as virsh prints a lease's expiry
/// (`g_date_time_new_from_unix_local`).
pub(crate) fn local_time(secs: i64) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: all-zero is a valid `struct tm` (plain integers and a null
    // zone pointer), which localtime_r fills in.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live values of the right types;
    // localtime_r is the thread-safe form and writes only `tm`. No crate
    // this project uses wraps the C library's time zone rules.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return secs.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

fn leases(s: &mut Session, out: &Out, arg: &str, mac: Option<&str>) -> Result<(), CmdError> {
    let n = lookup(s, arg)?;
    let mut leases = s
        .call::<procs::NetworkGetDhcpLeases>(&NetworkGetDhcpLeasesArgs {
            net: n.clone(),
            mac: mac.map(str::to_string),
            need_results: 1,
            flags: 0,
        })
        .map_err(|e| {
            CmdError::from(e).context(format!("Failed to get leases info for {}", n.name))
        })?
        .leases;
    leases.sort_by_key(|l| l.mac.clone().unwrap_or_default().to_lowercase());
    let mut t = Table::new(&[
        "Expiry Time",
        "MAC address",
        "Protocol",
        "IP address",
        "Hostname",
        "Client ID or DUID",
    ]);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for l in &leases {
        let proto = if l.type_ == ip_addr_type::IPV6 {
            "ipv6"
        } else {
            "ipv4"
        };
        t.row(&[
            local_time(l.expirytime),
            dash(&l.mac),
            proto.to_string(),
            format!("{}/{}", l.ipaddr, l.prefix),
            dash(&l.hostname),
            dash(&l.clientid),
        ]);
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

fn event(s: &mut Session, out: &Out, o: &NetEventOpts) -> Result<(), CmdError> {
    if o.list {
        out.print("lifecycle\n");
        return Ok(());
    }
    match o.event.as_deref() {
        None => return Err(CmdError::msg("either --list or --event <type> is required")),
        Some("lifecycle") => {}
        Some(other) => return Err(CmdError::msg(format!("unknown event type {other}"))),
    }
    let net = match &o.network {
        Some(n) => Some(lookup(s, n)?),
        None => None,
    };
    let id = s
        .call::<procs::ConnectNetworkEventRegisterAny>(&ConnectNetworkEventRegisterAnyArgs {
            event_id: VIR_NETWORK_EVENT_ID_LIFECYCLE,
            net,
        })
        .map_err(|e| CmdError::from(e).context("failed to register event 'lifecycle'"))?
        .callback_id;
    catch_sigint();
    let deadline = o.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut count = 0u64;
    let outcome = loop {
        if interrupted() {
            break Some("event loop interrupted\n");
        }
        let mut wait = Duration::from_millis(200);
        if let Some(d) = deadline {
            match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => wait = wait.min(left),
                _ => break Some("event loop timed out\n"),
            }
        }
        match s.client.next_event(Some(wait)) {
            Ok(Some(Args::NetworkEventLifecycle(m))) if m.callback_id == id => {
                let prefix = if o.timestamp {
                    format!("{}: ", timestamp(SystemTime::now()))
                } else {
                    String::new()
                };
                out.print(&format!(
                    "{prefix}event 'lifecycle' for network {}: {}\n",
                    m.net.name,
                    network_event::name(m.event)
                ));
                count += 1;
                if !o.loop_ {
                    break None;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(msg) = outcome {
        out.print(msg);
    }
    let _ = s.call::<procs::ConnectNetworkEventDeregisterAny>(&CallbackIdArgs { callback_id: id });
    out.print(&format!("events received: {count}\n"));
    if interrupted() {
        return Err(CmdError {
            context: None,
            cause: None,
        });
    }
    Ok(())
}

fn domifaddr(
    s: &mut Session,
    out: &Out,
    arg: &str,
    iface: Option<&str>,
    full: bool,
    source: Option<&str>,
) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let src = match source {
        None | Some("lease") => interface_addresses_source::LEASE,
        Some("agent") => interface_addresses_source::AGENT,
        Some("arp") => interface_addresses_source::ARP,
        Some(other) => {
            return Err(CmdError::msg(format!("Unknown data source '{other}'")));
        }
    };
    let ifaces = s
        .call::<procs::DomainInterfaceAddresses>(&DomainInterfaceAddressesArgs {
            dom,
            source: src,
            flags: 0,
        })
        .map_err(|e| CmdError::from(e).context("Failed to query for interfaces addresses"))?
        .ifaces;
    out.extra(&format!(
        " {:<10} {:<20} {:<8}     {}\n{}{}\n",
        "Name",
        "MAC address",
        "Protocol",
        "Address",
        "-".repeat(49),
        "-".repeat(30)
    ));
    for i in &ifaces {
        if iface.is_some_and(|want| want != i.name) {
            continue;
        }
        let hw = i.hwaddr.clone().unwrap_or_default();
        if i.addrs.is_empty() {
            out.print(&format!(
                " {:<10} {:<17}    {:<12} {}\n",
                i.name,
                if hw.is_empty() { "N/A" } else { &hw },
                "N/A",
                "N/A"
            ));
            continue;
        }
        for (j, a) in i.addrs.iter().enumerate() {
            let kind = if a.type_ == ip_addr_type::IPV6 {
                "ipv6"
            } else {
                "ipv4"
            };
            let addr = format!("{}/{}", a.addr, a.prefix);
            if full || j == 0 {
                out.print(&format!(
                    " {:<10} {:<17}    {:<12} {addr}\n",
                    i.name, hw, kind
                ));
            } else {
                out.print(&format!(
                    " {:<10} {:<17}    {:<12} {addr}\n",
                    "-", "-", kind
                ));
            }
        }
    }
    Ok(())
}
