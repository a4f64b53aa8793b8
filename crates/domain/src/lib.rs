//! rvirt's model of a libvirt domain: read the domain XML people already
//! have, check it with libvirt's rules, fill in what libvirt fills in at
//! define time, write it back in `virsh dumpxml` layout, and derive the
//! rvirt-vmm command line from it.
//!
//! This crate is pure: no KVM, no processes, no sockets.
//!
//! ```
//! use rvirt_domain::{derive_argv, Domain, RuntimePaths};
//! let xml = "<domain type='kvm'><name>demo</name><memory unit='MiB'>256</memory>\
//!            <os><type arch='x86_64' machine='pc'>hvm</type></os></domain>";
//! let mut dom = Domain::from_xml(xml).unwrap();
//! dom.fill_in();
//! let argv = derive_argv(&dom, &RuntimePaths::in_dir("/run/rvirt/demo")).unwrap();
//! assert!(argv.args.contains(&"guest=demo,debug-threads=on".to_string()));
//! ```

pub mod argv;
pub mod error;
mod fill;
mod format;
pub mod mac;
pub mod model;
pub mod names;
pub mod network;
mod order;
mod parse;
pub mod pci;
pub mod storage;
pub mod units;
pub mod usernet;
mod validate;
pub mod xml;

pub use argv::{
    backing_key, backing_paths, derive_argv, derive_argv_with, derive_disk, derive_nic, Argv,
    DeriveError, FdPlan, PasstRequest, RuntimePaths, Unsupported,
};
pub use error::{Error, Problem};
pub use fill::{OsRandom, Random};
pub use model::Domain;
pub use validate::MAX_VCPUS;

use error::Problems;

impl Domain {
    /// Parses and validates a domain definition. On error nothing is
    /// returned, so a rejected document changes nothing.
    pub fn from_xml(text: &str) -> Result<Domain, Error> {
        let root = xml::parse(text)?;
        let mut problems = Problems::default();
        let dom = parse::domain(root, &mut problems);
        validate::check(&dom, &mut problems);
        problems.into_result()?;
        Ok(dom)
    }

    /// Forgets what libvirt forgets when it parses a definition to define
    /// or create it (`VIR_DOMAIN_DEF_PARSE_INACTIVE`): tap names the host
    /// generated for one run (`vnet…`, `macvtap…`, `macvlan…`), which a
    /// live `dumpxml` shows. Kept, they would make the next start ask for
    /// a tap another VM may hold.
    pub fn forget_generated_names(&mut self) {
        for iface in &mut self.devices.interfaces {
            // A virtual network's port and bridge are given at each start.
            if iface.iface_type == "network" {
                if let Some(src) = iface.source.as_mut() {
                    src.take_attr("portid");
                    src.take_attr("bridge");
                }
            }
            if iface.target_dev.as_deref().is_some_and(|t| {
                ["vnet", "macvtap", "macvlan"]
                    .iter()
                    .any(|p| t.starts_with(p))
            }) {
                iface.target_dev = None;
            }
        }
    }

    /// Re-checks a definition built or edited in code.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Problems::default();
        validate::check(self, &mut problems);
        problems.into_result()
    }

    /// Fills in what libvirt fills in at define time: UUID, MAC addresses
    /// (52:54:00 prefix), `currentMemory`, vCPU placement, lifecycle
    /// actions, device aliases and addresses.
    pub fn fill_in(&mut self) {
        fill::fill_in(self, &mut OsRandom);
    }

    /// [`Domain::fill_in`] with a chosen source of randomness.
    pub fn fill_in_with(&mut self, rng: &mut dyn Random) {
        fill::fill_in(self, rng);
    }

    /// The definition as `virsh dumpxml` lays it out, with the device
    /// aliases [`Domain::fill_in`] assigned (libvirt's live XML).
    pub fn to_xml(&self) -> String {
        format::to_string(self)
    }

    /// The definition as `virsh dumpxml --inactive` and libvirt's stored
    /// config have it: device aliases are left out, except user aliases
    /// (`ua-` prefix), which libvirt keeps.
    pub fn to_inactive_xml(&self) -> String {
        let mut d = self.clone();
        fill::drop_runtime_aliases(&mut d);
        format::to_string(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tap_names_are_forgotten_chosen_ones_kept() {
        let xml = "<domain type='kvm'><name>n</name><memory>65536</memory>\
            <os><type>hvm</type><kernel>/k</kernel></os><devices>\
            <interface type='ethernet'><target dev='vnet3'/><model type='virtio'/></interface>\
            <interface type='ethernet'><target dev='macvtap0'/><model type='virtio'/></interface>\
            <interface type='ethernet'><target dev='tap7'/><model type='virtio'/></interface>\
            <interface type='network'><source network='default' portid='8c1a3a2e-4d4f-4bbb-9c1e-2f5f0d3c4b5a' bridge='virbr0'/><target dev='vnet4'/><model type='virtio'/></interface>\
            </devices></domain>";
        let mut d = Domain::from_xml(xml).unwrap();
        d.forget_generated_names();
        let names: Vec<_> = d
            .devices
            .interfaces
            .iter()
            .map(|i| i.target_dev.as_deref())
            .collect();
        assert_eq!(names, [None, None, Some("tap7"), None]);
        let src = d.devices.interfaces[3].source.as_ref().unwrap();
        assert_eq!(src.attrs.len(), 1);
        assert_eq!(src.attr("network"), Some("default"));
    }
}
