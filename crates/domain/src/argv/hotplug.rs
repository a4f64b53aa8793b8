//! One device's arguments for hot-plug: the same derivation as the
//! command line's (so a hot-plugged device is what it would have been at
//! start), for a daemon to turn into QMP `blockdev-add`, `netdev_add` and
//! `device_add`, as libvirt 9.0 sends them.

use super::{devices, Argv, Builder, DeriveError, FdPlan, RuntimePaths};
use crate::model::Domain;

fn builder<'a>(dom: &'a Domain, paths: &'a RuntimePaths, fds: &'a FdPlan) -> Builder<'a> {
    Builder {
        argv: Argv::default(),
        refused: Vec::new(),
        fds,
        next_fdset: 0,
        paths,
        name: &dom.name,
    }
}

fn finish(b: Builder<'_>) -> Result<Argv, DeriveError> {
    if b.refused.is_empty() {
        Ok(b.argv)
    } else {
        Err(DeriveError::Unsupported(b.refused))
    }
}

/// `-blockdev` (every node, deepest image first) and `-device` of disk
/// `index` of `dom`, its block nodes numbered from `first_node` up (the
/// VMM's next free `libvirt-N-…` number), its images named by `fds`
/// (`fdsets` for files passed with `add-fd`; none: by path).
pub fn derive_disk(
    dom: &Domain,
    index: usize,
    first_node: usize,
    fds: &FdPlan,
    paths: &RuntimePaths,
) -> Result<Argv, DeriveError> {
    let d = &dom.devices.disks[index];
    let chain = devices::chain(d);
    let layers = chain.as_ref().map_or(1, |c| 1 + c.below_len());
    let mut b = builder(dom, paths, fds);
    devices::disk(dom, d, &chain, first_node + layers - 1, None, &mut b);
    finish(b)
}

/// `-netdev` and `-device` of interface `index` of `dom`, its back-end
/// named `hostnet{n}` (`n` from its alias `net{n}`, as libvirt names both
/// at hot-plug), a tap by the descriptor `fds.taps` names. The tap to
/// open is in the result's `taps`.
pub fn derive_nic(
    dom: &Domain,
    index: usize,
    n: usize,
    fds: &FdPlan,
    paths: &RuntimePaths,
) -> Result<Argv, DeriveError> {
    let mut b = builder(dom, paths, fds);
    devices::nic(dom, &dom.devices.interfaces[index], n, None, &mut b);
    finish(b)
}
