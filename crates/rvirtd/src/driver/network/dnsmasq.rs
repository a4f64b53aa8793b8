//! dnsmasq for a network's DHCP and DNS, as libvirt's bridge driver runs
//! it: a configuration file in libvirt's form (`networkDnsmasqConfContents`)
//! and `dnsmasq --conf-file=… --leasefile-ro --dhcp-script=HELPER`, the
//! helper keeping the leases in `BRIDGE.status`.
//!
//! Where rvirt differs, and why:
//! - dnsmasq stays in the foreground (`--keep-in-foreground`) as a
//!   supervised child of rvirtd (a pidfd, reaped by rvirtd), instead of
//!   daemonizing; it still writes its pid file, after its sockets are
//!   bound, which is how a start knows it is serving, and the pid file and
//!   the record find it again after a restart of rvirtd.
//! - Static DHCP hosts and DNS hosts are `dhcp-host=` and `host-record=`
//!   lines of the configuration file rather than libvirt's separate
//!   `dhcp-hostsfile` and `addn-hosts`: dnsmasq reads those two after it
//!   drops root for `nobody`, and rvirtd's tree is private (0700, always
//!   so for a `--root` tree), while the configuration is read as root. A
//!   change of them restarts dnsmasq (the leases survive through the
//!   helper's `init`), where libvirt rewrites the files and sends SIGHUP.
//! - Its output (`--log-facility=-`) goes to `NAME.log` beside it.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_domain::network::{Ip, Network};

use crate::paths::Tree;
use crate::supervise::{Child, Record, Spawn};

/// How long a new dnsmasq may take to bind its sockets and write its pid
/// file.
const START_WAIT: Duration = Duration::from_secs(10);
/// How often the start looks for the pid file (dnsmasq says nothing else
/// when it is ready).
const START_POLL: Duration = Duration::from_millis(10);
/// SIGTERM to SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The files of one network's dnsmasq.
#[derive(Debug, Clone)]
pub struct Files {
    pub conf: PathBuf,
    pub pid: PathBuf,
    pub log: PathBuf,
    /// The leases, by bridge (libvirt's custom lease file).
    pub status: PathBuf,
}

impl Files {
    pub fn new(tree: &Tree, name: &str, bridge: &str) -> Self {
        Files {
            conf: tree.dnsmasq_dir.join(format!("{name}.conf")),
            pid: tree.network_state_dir.join(format!("{name}.pid")),
            log: tree.dnsmasq_dir.join(format!("{name}.log")),
            status: tree.dnsmasq_dir.join(format!("{bridge}.status")),
        }
    }
}

/// Whether the network needs a dnsmasq at all (libvirt's rule: an address,
/// and DHCP or DNS wanted).
pub fn needed(net: &Network) -> bool {
    !net.ips.is_empty()
        && (net.dhcp_ip(false).is_some() || net.dhcp_ip(true).is_some() || net.dns_enabled())
}

fn lease_time(extra: &rvirt_domain::xml::Element) -> Option<String> {
    let l = extra.child("lease")?;
    let expiry: u64 = l.attr("expiry")?.parse().ok()?;
    if expiry == 0 {
        return Some("infinite".into());
    }
    let unit = l.attr("unit").unwrap_or("minutes");
    Some(format!("{expiry}{}", unit.chars().next().unwrap_or('m')))
}

fn dhcp_lines(out: &mut String, ip: &Ip, leases: &mut u128) {
    let Some(cidr) = ip.cidr() else { return };
    let Some(dhcp) = &ip.dhcp else { return };
    for r in &dhcp.ranges {
        let mut line = if ip.address.is_ipv6() {
            format!("dhcp-range={},{},{}", r.start, r.end, cidr.prefix)
        } else {
            format!("dhcp-range={},{},{}", r.start, r.end, cidr.netmask())
        };
        if let Some(t) = lease_time(&r.extra) {
            let _ = write!(line, ",{t}");
        }
        let _ = writeln!(out, "{line}");
        *leases += rvirt_domain::network::range_len(r.start, r.end);
    }
    if dhcp.ranges.is_empty() && !dhcp.hosts.is_empty() {
        if ip.address.is_ipv6() {
            let _ = writeln!(out, "dhcp-range={},static,{}", ip.address, cidr.prefix);
        } else {
            let _ = writeln!(out, "dhcp-range={},static", ip.address);
        }
    }
    if ip.address.is_ipv4() {
        let _ = writeln!(out, "dhcp-no-override\ndhcp-authoritative");
        if let Some(root) = &ip.tftp_root {
            let _ = writeln!(out, "enable-tftp\ntftp-root={root}");
        }
        if let Some(b) = dhcp.extra.child("bootp") {
            if let Some(file) = b.attr("file") {
                match b.attr("server") {
                    Some(s) => {
                        let _ = writeln!(out, "dhcp-boot={file},,{s}");
                    }
                    None => {
                        let _ = writeln!(out, "dhcp-boot={file}");
                    }
                }
            }
        }
    }
}

fn host_lines(out: &mut String, ip: &Ip) {
    let Some(dhcp) = &ip.dhcp else { return };
    for h in &dhcp.hosts {
        let Some(addr) = h.ip else { continue };
        let mut parts: Vec<String> = Vec::new();
        if ip.address.is_ipv6() {
            if let Some(id) = &h.id {
                parts.push(format!("id:{id}"));
            }
            if let Some(n) = &h.name {
                parts.push(n.clone());
            }
            parts.push(format!("[{addr}]"));
        } else {
            if let Some(m) = h.mac {
                parts.push(m.to_string());
            }
            parts.push(addr.to_string());
            if let Some(n) = &h.name {
                parts.push(n.clone());
            }
        }
        if let Some(t) = lease_time(&h.extra) {
            parts.push(t);
        }
        let _ = writeln!(out, "dhcp-host={}", parts.join(","));
    }
}

/// The configuration file's text (libvirt's, with the differences above).
pub fn config(net: &Network, bridge: &str, pid_file: &Path) -> String {
    let mut c = String::new();
    let _ = write!(
        c,
        "##WARNING:  THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
         ##OVERWRITTEN AND LOST.  Changes to this configuration should be made using:\n\
         ##    virsh net-edit {}\n\
         ## or other application using the libvirt API.\n\
         ##\n\
         ## dnsmasq conf file created by rvirt\n\
         strict-order\n",
        net.name
    );
    let dns = net.dns.as_ref();
    let want_dns = net.dns_enabled();
    if !want_dns {
        c.push_str("port=0\n");
    }
    if want_dns {
        let mut no_resolv = false;
        for f in dns
            .into_iter()
            .flat_map(|d| d.elements())
            .filter(|e| e.name == "forwarder")
        {
            c.push_str("server=");
            if let Some(d) = f.attr("domain") {
                let _ = write!(c, "/{d}/");
            }
            match f.attr("addr") {
                Some(a) => {
                    let _ = writeln!(c, "{a}");
                    no_resolv |= f.attr("domain").is_none();
                }
                None => c.push_str("#\n"),
            }
        }
        if no_resolv {
            c.push_str("no-resolv\n");
        }
    }
    if let Some(d) = &net.domain {
        if d.local_only == Some(true) {
            let _ = writeln!(c, "local=/{}/", d.name);
        }
        let _ = writeln!(c, "domain={}\nexpand-hosts", d.name);
    }
    if want_dns && dns.and_then(|d| d.attr("forwardPlainNames")) == Some("no") {
        c.push_str("domain-needed\nlocal=//\n");
    }
    let _ = writeln!(c, "pid-file={}", pid_file.display());
    let _ = writeln!(c, "except-interface=lo\nbind-dynamic\ninterface={bridge}");
    if net.forward.is_none() {
        c.push_str("dhcp-option=3\nno-resolv\nra-param=*,0,0\n");
    }
    if want_dns {
        for e in dns.into_iter().flat_map(|d| d.elements()) {
            match &*e.name {
                "txt" => {
                    let _ = writeln!(
                        c,
                        "txt-record={},{}",
                        e.attr("name").unwrap_or_default(),
                        e.attr("value").unwrap_or_default()
                    );
                }
                "srv" => {
                    let _ = write!(
                        c,
                        "srv-host=_{}._{}",
                        e.attr("service").unwrap_or_default(),
                        e.attr("protocol").unwrap_or_default()
                    );
                    if let Some(d) = e.attr("domain") {
                        let _ = write!(c, ".{d}");
                    }
                    if let Some(t) = e.attr("target").filter(|t| *t != ".") {
                        let _ = write!(c, ",{t}");
                        let num = |k| e.attr(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                        let (port, prio, weight) = (num("port"), num("priority"), num("weight"));
                        if port > 0 || prio > 0 || weight > 0 {
                            let _ = write!(c, ",{}", if port > 0 { port } else { 1 });
                        }
                        if prio > 0 || weight > 0 {
                            let _ = write!(c, ",{prio}");
                        }
                        if weight > 0 {
                            let _ = write!(c, ",{weight}");
                        }
                    }
                    c.push('\n');
                }
                _ => {}
            }
        }
    }
    let mut leases = 0u128;
    let v4 = net.dhcp_ip(false);
    let v6 = net.dhcp_ip(true);
    for ip in [v4, v6].into_iter().flatten() {
        dhcp_lines(&mut c, ip, &mut leases);
    }
    if leases > 0 {
        let _ = writeln!(c, "dhcp-lease-max={leases}");
    }
    for ip in [v4, v6].into_iter().flatten() {
        host_lines(&mut c, ip);
    }
    if want_dns {
        for h in dns
            .into_iter()
            .flat_map(|d| d.elements())
            .filter(|e| e.name == "host")
        {
            let names: Vec<String> = h
                .elements()
                .filter(|n| n.name == "hostname")
                .map(|n| n.text().trim().to_string())
                .collect();
            if let (Some(ip), false) = (h.attr("ip"), names.is_empty()) {
                let _ = writeln!(c, "host-record={},{ip}", names.join(","));
            }
        }
    }
    if let Some(mtu) = net.mtu {
        let _ = writeln!(c, "dhcp-option=option:mtu,{mtu}");
    }
    if v6.is_some() {
        c.push_str("enable-ra\n");
    } else {
        for ip in net.ips.iter().filter(|i| i.address.is_ipv6()) {
            let _ = writeln!(c, "dhcp-range={},ra-only", ip.address);
        }
    }
    // <dnsmasq:options> (libvirt's XML namespace for raw options).
    for o in net.extra.elements().filter(|e| e.name == "dnsmasq:options") {
        for v in o.elements().filter_map(|e| e.attr("value")) {
            let _ = writeln!(c, "{v}");
        }
    }
    c
}

/// Why dnsmasq could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    /// libvirt's message when its dnsmasq binary is missing.
    #[error("Cannot check dnsmasq binary {path}: {}", rvirt_hostnet::strerror(.source))]
    Binary {
        path: String,
        source: std::io::Error,
    },
    #[error("couldn't write dnsmasq config file '{0}'")]
    Config(String, #[source] std::io::Error),
    #[error("cannot start dnsmasq")]
    Spawn(#[source] crate::supervise::SpawnError),
    #[error("dnsmasq exited at start: {0}")]
    Exited(String),
    #[error("dnsmasq wrote no pid file in {0:?}")]
    Timeout(Duration),
}

/// What starts a dnsmasq.
pub struct Programs<'a> {
    pub dnsmasq: &'a Path,
    pub helper: &'a Path,
}

/// Writes the configuration and starts dnsmasq for `net` on `bridge`;
/// returns once it has bound its sockets.
pub fn start(
    p: &Programs<'_>,
    net: &Network,
    bridge: &str,
    files: &Files,
) -> Result<Arc<Child>, DnsmasqError> {
    if let Err(e) = std::fs::metadata(p.dnsmasq) {
        return Err(DnsmasqError::Binary {
            path: p.dnsmasq.display().to_string(),
            source: e,
        });
    }
    let text = config(net, bridge, &files.pid);
    crate::fsutil::write_atomic(&files.conf, text.as_bytes())
        .map_err(|e| DnsmasqError::Config(files.conf.display().to_string(), e))?;
    let _ = std::fs::remove_file(&files.pid);
    let args = [
        format!("--conf-file={}", files.conf.display()),
        "--leasefile-ro".to_string(),
        format!("--dhcp-script={}", p.helper.display()),
        "--keep-in-foreground".to_string(),
        "--log-facility=-".to_string(),
    ];
    let status = files.status.display().to_string();
    let child = Arc::new(
        Child::spawn(Spawn {
            program: p.dnsmasq,
            args: &args,
            pass: Vec::new(),
            log: Some(&files.log),
            env_remove: &["RVIRT_LOG"],
            env: &[("RVIRT_LEASES", &status), ("VIR_BRIDGE_NAME", bridge)],
            // Not a VMM: no guest reaches it but through its sockets, and
            // like libvirt's it runs as rvirtd's user (the VMM's jail would
            // take away the bridge, the leases helper and the state files).
            jail: None,
        })
        .map_err(DnsmasqError::Spawn)?,
    );
    let deadline = Instant::now() + START_WAIT;
    loop {
        let pid = std::fs::read_to_string(&files.pid).unwrap_or_default();
        if pid.trim().parse::<i32>().ok() == Some(child.pid()) {
            return Ok(child);
        }
        if child.wait(Some(START_POLL)) {
            return Err(DnsmasqError::Exited(log_tail(&files.log)));
        }
        if Instant::now() >= deadline {
            stop(&child);
            return Err(DnsmasqError::Timeout(START_WAIT));
        }
    }
}

/// The last lines of dnsmasq's log, for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("\n")
}

/// Stops a dnsmasq and what it forked (the process that runs the lease
/// helper as root outlives it for a moment otherwise).
pub fn stop(child: &Child) {
    if !child.stop(STOP_GRACE) {
        tracing::warn!(pid = child.pid(), "dnsmasq did not exit");
    }
    child.signal_group(rustix::process::Signal::KILL);
}

/// The marker a dnsmasq's command line has: its configuration file.
pub fn marker(files: &Files) -> String {
    format!("--conf-file={}", files.conf.display())
}

/// The dnsmasq of a record, if it still runs.
pub fn adopt(rec: &Record) -> Option<Arc<Child>> {
    Child::adopt(rec).map(Arc::new)
}

/// Whether `a` is served by the network's DHCP (for the leases' prefix).
pub fn prefix_of(net: &Network, a: IpAddr) -> u32 {
    net.ips
        .iter()
        .filter_map(|i| i.cidr())
        .find(|c| c.address.is_ipv6() == a.is_ipv6())
        .map_or(0, |c| u32::from(c.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_networks_configuration_is_libvirts() {
        let net = Network::from_xml(
            "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>\
             <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
             <range start='192.168.122.2' end='192.168.122.254'/>\
             <host mac='52:54:00:00:00:09' name='g' ip='192.168.122.9'/></dhcp></ip></network>",
        )
        .unwrap();
        assert_eq!(
            config(&net, "virbr0", Path::new("/run/rvirt/network/default.pid")),
            "##WARNING:  THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
             ##OVERWRITTEN AND LOST.  Changes to this configuration should be made using:\n\
             ##    virsh net-edit default\n\
             ## or other application using the libvirt API.\n\
             ##\n\
             ## dnsmasq conf file created by rvirt\n\
             strict-order\n\
             pid-file=/run/rvirt/network/default.pid\n\
             except-interface=lo\n\
             bind-dynamic\n\
             interface=virbr0\n\
             dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0\n\
             dhcp-no-override\n\
             dhcp-authoritative\n\
             dhcp-lease-max=253\n\
             dhcp-host=52:54:00:00:00:09,192.168.122.9,g\n"
        );
        assert!(needed(&net));
        // An isolated network tells guests of no router and forwards no DNS.
        let iso = Network::from_xml(
            "<network><name>i</name><ip address='10.0.0.1' prefix='24'/><dns enable='no'/></network>",
        )
        .unwrap();
        let c = config(&iso, "virbr1", Path::new("/p"));
        assert!(
            c.contains("port=0\n") && c.contains("dhcp-option=3\nno-resolv\n"),
            "{c}"
        );
        assert!(!needed(&iso), "no DHCP and no DNS");
    }
}
