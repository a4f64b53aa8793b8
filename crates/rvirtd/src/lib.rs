//! rvirtd: rvirt's management daemon. It plays libvirtd's role and speaks
//! libvirt's remote protocol on a UNIX socket, so the real `virsh` (and
//! rvirsh) manage rvirt VMs: definitions on disk, one rvirt-vmm process
//! per running domain followed over QMP, state that survives a daemon
//! restart. It links no device or guest-memory code: it talks to a VM only
//! through its process and its monitor.
//!
//! | module | job |
//! | --- | --- |
//! | [`server`] | the socket, one reader and one writer thread per client, the router |
//! | [`driver`] | the drivers by resource: host, domain, network, storage |
//! | [`store`] | definitions and autostart links on disk, for every driver |
//! | [`supervise`] | supervised children: spawn with passed fds, pidfd, stop, adopt |
//! | [`paths`], [`fsutil`], [`sys`] | the tree, atomic writes and the lock, system calls |
//!
//! Threads and locks: `docs/rvirtd-threads.md`.

// Operations fail with libvirt's `remote_error` as the wire carries it;
// errors are the rare path, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod driver;
pub mod fsutil;
pub mod paths;
pub mod server;
pub mod store;
pub mod supervise;
pub mod sys;

use std::path::PathBuf;
use std::time::Duration;

pub use driver::Drivers;
pub use paths::Tree;

/// How rvirtd is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub tree: Tree,
    /// The rvirt-vmm executable.
    pub vmm: PathBuf,
    /// How long destroy waits after SIGTERM before SIGKILL.
    pub destroy_grace: Duration,
    /// How VMMs are confined: their user and group (qemu.conf's `user` and
    /// `group`); None runs them as rvirtd's own user, unjailed.
    pub confine: Option<driver::domain::confine::Confinement>,
    /// `-sandbox on,…` (qemu.conf's `seccomp_sandbox`).
    pub sandbox: bool,
    /// libvirtd's keepalive_interval and keepalive_count: silence before
    /// a PING, unanswered PINGs before a client is dropped.
    pub keepalive: (Duration, u32),
    /// The network driver's programs and the default network.
    pub network: driver::network::NetworkConfig,
}

/// An error with its sources, `outer: inner: innermost`: the one place a
/// chain is printed, so that no message repeats its source.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        next = inner.source();
    }
    s
}
