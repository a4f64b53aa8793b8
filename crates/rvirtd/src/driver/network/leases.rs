//! The DHCP leases of a network as libvirt keeps them: the
//! `BRIDGE.status` JSON array its `leaseshelper` writes when dnsmasq
//! reports a lease (`--dhcp-script`), read back by NETWORK_GET_DHCP_LEASES
//! and `domifaddr --source lease`. `rvirt-leaseshelper` is the writer;
//! the daemon only reads.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The most a status file may hold, as libvirt's
/// VIR_NETWORK_DHCP_LEASE_FILE_SIZE_MAX.
pub const MAX_STATUS_SIZE: u64 = 32 * 1024 * 1024;

/// One lease, with libvirt's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(rename = "ip-address")]
    pub ip: String,
    #[serde(rename = "mac-address")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(rename = "client-id", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iaid: Option<String>,
    #[serde(
        rename = "server-duid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_duid: Option<String>,
    /// Seconds since the epoch; 0 for a lease that never expires.
    #[serde(rename = "expiry-time")]
    pub expiry: i64,
}

impl Lease {
    /// Whether it has expired at `now` (seconds since the epoch).
    pub fn expired(&self, now: i64) -> bool {
        self.expiry > 0 && self.expiry < now
    }
}

/// Why a status file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    #[error("Unable to read leases file: {0}")]
    Read(String, #[source] io::Error),
    #[error("invalid json in file: {0}")]
    Json(String),
}

/// The leases in `path`; none when there is no file (a network without
/// dnsmasq), as libvirt answers.
pub fn read(path: &Path) -> Result<Vec<Lease>, LeaseFileError> {
    let fail = |e| LeaseFileError::Read(path.display().to_string(), e);
    let text = match std::fs::File::open(path) {
        Ok(f) => {
            let mut s = String::new();
            io::Read::read_to_string(&mut io::Read::take(f, MAX_STATUS_SIZE), &mut s)
                .map_err(fail)?;
            s
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e)),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|_| LeaseFileError::Json(path.display().to_string()))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What dnsmasq tells its `--dhcp-script` (its arguments and environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `add`, `old`, `del`, `init`, `tftp`…
    pub action: String,
    pub mac: String,
    pub ip: String,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
    pub iaid: Option<String>,
    pub server_duid: Option<String>,
    pub expiry: i64,
}

/// The leases after `ev` (add and old replace the lease of the same
/// address, del removes it); expired leases are dropped on the way.
pub fn apply(mut leases: Vec<Lease>, ev: &Event, now: i64) -> Vec<Lease> {
    leases.retain(|l| !l.expired(now) && l.ip != ev.ip);
    if matches!(ev.action.as_str(), "add" | "old") && !ev.mac.is_empty() {
        leases.push(Lease {
            ip: ev.ip.clone(),
            mac: ev.mac.clone(),
            hostname: ev.hostname.clone().filter(|h| !h.is_empty() && h != "*"),
            client_id: ev.client_id.clone().filter(|c| !c.is_empty()),
            iaid: ev.iaid.clone().filter(|c| !c.is_empty()),
            server_duid: ev.server_duid.clone().filter(|c| !c.is_empty()),
            expiry: ev.expiry,
        });
    }
    leases
}

/// The leases in dnsmasq's lease-file format, which it reads from the
/// script's `init` when it starts with `--leasefile-ro`: so a restarted
/// dnsmasq keeps its leases.
pub fn dnsmasq_init(leases: &[Lease], now: i64) -> String {
    let mut out = String::new();
    let mut v6 = Vec::new();
    for l in leases.iter().filter(|l| !l.expired(now)) {
        if l.ip.contains(':') {
            v6.push(l);
            continue;
        }
        out.push_str(&format!(
            "{} {} {} {} {}\n",
            l.expiry,
            l.mac,
            l.ip,
            l.hostname.as_deref().unwrap_or("*"),
            l.client_id.as_deref().unwrap_or("*")
        ));
    }
    if let Some(duid) = v6.iter().find_map(|l| l.server_duid.as_deref()) {
        out.push_str(&format!("duid {duid}\n"));
        for l in v6 {
            out.push_str(&format!(
                "{} {} {} {} {}\n",
                l.expiry,
                l.iaid.as_deref().unwrap_or("0"),
                l.ip,
                l.hostname.as_deref().unwrap_or("*"),
                l.client_id.as_deref().unwrap_or("*")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, ip: &str) -> Event {
        Event {
            action: action.into(),
            mac: "52:54:00:00:00:01".into(),
            ip: ip.into(),
            hostname: Some("guest".into()),
            client_id: Some("01:52:54:00:00:00:01".into()),
            expiry: 2000,
            ..Default::default()
        }
    }

    #[test]
    fn events_keep_one_lease_per_address_in_libvirts_json() {
        let l = apply(Vec::new(), &ev("add", "192.168.122.10"), 1000);
        let l = apply(l, &ev("old", "192.168.122.10"), 1000);
        let l = apply(l, &ev("add", "192.168.122.11"), 1000);
        assert_eq!(l.len(), 2);
        let json = serde_json::to_string(&l[0]).unwrap();
        assert_eq!(
            json,
            r#"{"ip-address":"192.168.122.10","mac-address":"52:54:00:00:00:01","hostname":"guest","client-id":"01:52:54:00:00:00:01","expiry-time":2000}"#
        );
        assert_eq!(
            dnsmasq_init(&l, 1000),
            "2000 52:54:00:00:00:01 192.168.122.10 guest 01:52:54:00:00:00:01\n\
             2000 52:54:00:00:00:01 192.168.122.11 guest 01:52:54:00:00:00:01\n"
        );
        let l = apply(l, &ev("del", "192.168.122.10"), 1000);
        assert_eq!(l.len(), 1);
        // Expired leases go at the next event and are never offered back.
        assert!(apply(l.clone(), &ev("tftp", "x"), 3000).is_empty());
        assert_eq!(dnsmasq_init(&l, 3000), "");
    }

    #[test]
    fn a_missing_file_is_no_leases_and_a_broken_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("virbr0.status");
        assert!(read(&p).unwrap().is_empty());
        std::fs::write(&p, "").unwrap();
        assert!(read(&p).unwrap().is_empty());
        std::fs::write(&p, "{not json").unwrap();
        assert_eq!(
            read(&p).unwrap_err().to_string(),
            format!("invalid json in file: {}", p.display())
        );
    }
}
