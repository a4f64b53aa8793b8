//! `rvirt-leaseshelper`: dnsmasq's `--dhcp-script` for rvirtd's networks,
//! as libvirt's `libvirt_leaseshelper`. dnsmasq runs it (as root, one call
//! at a time) with `add|old|del MAC IP [HOSTNAME]` and the lease's details
//! in `DNSMASQ_*` variables; it keeps the network's leases in the JSON
//! status file named by `RVIRT_LEASES` (rvirtd puts it in dnsmasq's
//! environment), which rvirtd reads. With `init` it prints the leases in
//! dnsmasq's lease-file format, so a restarted dnsmasq (`--leasefile-ro`)
//! keeps them.

use std::process::ExitCode;

use rvirtd::driver::network::leases::{self, Event};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = std::env::var_os("RVIRT_LEASES") else {
        eprintln!("rvirt-leaseshelper: RVIRT_LEASES is not set");
        return ExitCode::FAILURE;
    };
    let path = std::path::PathBuf::from(path);
    let current = match leases::read(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rvirt-leaseshelper: {e}");
            Vec::new()
        }
    };
    let now = leases::now();
    let action = args.first().cloned().unwrap_or_default();
    if action == "init" {
        print!("{}", leases::dnsmasq_init(&current, now));
        return ExitCode::SUCCESS;
    }
    if !matches!(action.as_str(), "add" | "old" | "del") || args.len() < 3 {
        // tftp and the like: nothing to keep.
        return ExitCode::SUCCESS;
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ev = Event {
        action,
        mac: args[1].clone(),
        ip: args[2].clone(),
        hostname: args
            .get(3)
            .cloned()
            .or_else(|| var("DNSMASQ_SUPPLIED_HOSTNAME")),
        client_id: var("DNSMASQ_CLIENT_ID"),
        iaid: var("DNSMASQ_IAID"),
        server_duid: var("DNSMASQ_SERVER_DUID"),
        expiry: var("DNSMASQ_LEASE_EXPIRES")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let next = leases::apply(current, &ev, now);
    let text = match serde_json::to_string_pretty(&next) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rvirt-leaseshelper: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rvirtd::fsutil::write_atomic(&path, format!("{text}\n").as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvirt-leaseshelper: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
