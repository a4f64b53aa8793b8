//! The block node graph as the monitor sees it: the named nodes of the
//! command line's `-blockdev`s and those QMP `blockdev-add` made, who uses
//! each (a format node above it, or a device), and `blockdev-del`.
//!
//! A node is read with rvirt-vmm-config's `-blockdev` reader (the one
//! place that knows QEMU's spelling) and checked as QEMU checks it when it
//! is added: the node name, the nodes it refers to, the file (opened
//! now, and for `/dev/fdset/N` kept, see [`crate::fdset::keep`]), the
//! image (a format node's header and chain are read now, read-only).
//! A node is not attached to anything until a device or a snapshot takes
//! it ([`BlockNodes::attach`]).
//!
//! Error texts are QEMU 7.2's for the same mistakes.

use std::collections::BTreeMap;
use std::path::Path;

use rvirt_block::{AioMode, Disk, OpenOptions};
use rvirt_qmp::QmpError;
use rvirt_vmm_config::{
    blockdev_node, Backing, FileRef, FormatNode, NodeDef, ProtocolNode, VirtioConfig, VmConfig,
};

/// How a node is used by the one that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A format node's `file`.
    File,
    /// A format node's `backing`.
    Backing,
}

/// What holds a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum User {
    /// The format node `name`, as `role`.
    Node { name: String, role: Role },
    /// A guest device (its id, or its drive's name without one).
    Device(String),
}

#[derive(Debug, Clone)]
enum Kind {
    Protocol(ProtocolNode),
    /// With its file and its backing chain joined in.
    Format(FormatNode),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    user: Option<User>,
    /// The nodes this one holds (released when it is deleted).
    children: Vec<String>,
}

/// Every named node of the VM.
#[derive(Debug, Default)]
pub(crate) struct BlockNodes {
    nodes: BTreeMap<String, Node>,
    /// `-drive` ids: QEMU's block backends, which node names may not take.
    drive_ids: Vec<String>,
}

/// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.`, `_`.
fn well_formed(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// QEMU's node names are at most 31 bytes.
const MAX_NODE_NAME: usize = 31;

fn not_found(name: &str) -> QmpError {
    QmpError::generic(format!(
        "Cannot find device='{name}' nor node-name='{name}'"
    ))
}

/// An I/O error as strerror words it (QEMU's texts have no "os error N").
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

impl BlockNodes {
    /// The named nodes of the command line's disks, each held by the node
    /// above it or by its device.
    pub(crate) fn new(cfg: &VmConfig) -> Self {
        let mut graph = BlockNodes::default();
        for dev in &cfg.virtio {
            let VirtioConfig::Blk(d) = dev else { continue };
            if !d.blockdev {
                graph.drive_ids.push(d.drive.clone());
            }
            let device = d.id.clone().unwrap_or_else(|| d.drive.clone());
            graph.seed(&d.image, User::Device(device));
        }
        // ATA drives' media: a CD-ROM's is let go when it is removed
        // (`blockdev-remove-medium`), then deleted by the client.
        for a in &cfg.ata_drives {
            let Some(d) = &a.disk else { continue };
            let device = a.id.clone().unwrap_or_else(|| d.drive.clone());
            graph.seed(&d.image, User::Device(device));
        }
        // virtio-scsi LUNs' media, held alike.
        for s in &cfg.virtio {
            let VirtioConfig::Scsi(s) = s else { continue };
            for l in &s.luns {
                let Some(d) = &l.disk else { continue };
                let device = l.id.clone().unwrap_or_else(|| d.drive.clone());
                graph.seed(&d.image, User::Device(device));
            }
        }
        graph
    }

    /// The format node device `device` holds, if any.
    pub(crate) fn held_by(&self, device: &str) -> Option<String> {
        self.nodes
            .iter()
            .find(|(_, n)| matches!(&n.user, Some(User::Device(d)) if d == device))
            .map(|(name, _)| name.clone())
    }

    fn seed(&mut self, f: &FormatNode, user: User) {
        let Some(name) = f.node_name.clone() else {
            return;
        };
        let mut children = Vec::new();
        if let Some(file) = f.file.node_name.clone() {
            self.nodes.insert(
                file.clone(),
                Node {
                    kind: Kind::Protocol(f.file.clone()),
                    user: Some(User::Node {
                        name: name.clone(),
                        role: Role::File,
                    }),
                    children: Vec::new(),
                },
            );
            children.push(file);
        }
        if let Backing::Node(below) = &f.backing {
            if let Some(b) = below.node_name.clone() {
                children.push(b);
            }
            self.seed(
                below,
                User::Node {
                    name: name.clone(),
                    role: Role::Backing,
                },
            );
        }
        self.nodes.insert(
            name,
            Node {
                kind: Kind::Format(f.clone()),
                user: Some(user),
                children,
            },
        );
    }

    /// Whether `name` is a node.
    // For device_add (hot-plug).
    #[allow(dead_code)]
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// The format node `name`, with its file and chain.
    pub(crate) fn format_node(&self, name: &str) -> Option<&FormatNode> {
        match &self.nodes.get(name)?.kind {
            Kind::Format(f) => Some(f),
            Kind::Protocol(_) => None,
        }
    }

    /// What holds `name`, if anything.
    pub(crate) fn user(&self, name: &str) -> Option<&User> {
        self.nodes.get(name)?.user.as_ref()
    }

    fn check_name(&self, name: &str) -> Result<(), QmpError> {
        if !well_formed(name) {
            return Err(QmpError::generic(format!("Invalid node-name: '{name}'")));
        }
        if name.len() > MAX_NODE_NAME {
            return Err(QmpError::generic("Node name too long"));
        }
        if self.drive_ids.iter().any(|d| d == name) {
            return Err(QmpError::generic(format!(
                "node-name={name} is conflicting with a device id"
            )));
        }
        if self.nodes.contains_key(name) {
            return Err(QmpError::generic(format!(
                "Duplicate nodes with node-name='{name}'"
            )));
        }
        Ok(())
    }

    /// QMP `blockdev-add` of the node `args` describe.
    pub(crate) fn add(
        &mut self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), QmpError> {
        let json = serde_json::Value::Object(args.clone()).to_string();
        let def = blockdev_node("blockdev-add", &json).map_err(|e| QmpError::generic(e.message))?;
        let name = def.name().to_string();
        self.check_name(&name)?;
        match def {
            NodeDef::Protocol(p) => {
                let p = open_protocol(p)?;
                self.nodes.insert(
                    name,
                    Node {
                        kind: Kind::Protocol(p),
                        user: None,
                        children: Vec::new(),
                    },
                );
            }
            NodeDef::Format(def) => {
                let mut node = def.node;
                let mut held: Vec<(String, Role)> = Vec::new();
                node.file = match def.file {
                    FileRef::Inline(p) => open_protocol(p)?,
                    FileRef::Node(file) => {
                        let n = self.nodes.get(&file).ok_or_else(|| not_found(&file))?;
                        let Kind::Protocol(p) = &n.kind else {
                            return Err(QmpError::generic(format!(
                                "node '{file}' is a format node: 'file' takes a protocol node"
                            )));
                        };
                        if let Some(User::Node { name: other, .. }) = &n.user {
                            return Err(QmpError::generic(format!(
                                "Permission conflict on node '{file}': permissions 'write, resize' are both required by node '{other}' (uses node '{file}' as 'file' child) and unshared by node '{name}' (uses node '{file}' as 'file' child)."
                            )));
                        }
                        held.push((file.clone(), Role::File));
                        p.clone()
                    }
                };
                node.backing = match def.backing {
                    None => Backing::FromImage,
                    Some(None) => Backing::None,
                    Some(Some(below)) => {
                        let b = self.backing_candidate(&below)?;
                        held.push((below.clone(), Role::Backing));
                        Backing::Node(Box::new(b.clone()))
                    }
                };
                check_image(&node)?;
                for (child, role) in &held {
                    if let Some(c) = self.nodes.get_mut(child) {
                        c.user = Some(User::Node {
                            name: name.clone(),
                            role: *role,
                        });
                    }
                }
                self.nodes.insert(
                    name,
                    Node {
                        kind: Kind::Format(node),
                        user: None,
                        children: held.into_iter().map(|(c, _)| c).collect(),
                    },
                );
            }
        }
        Ok(())
    }

    /// The format node `below`, free to become a backing image.
    fn backing_candidate(&self, below: &str) -> Result<&FormatNode, QmpError> {
        let n = self.nodes.get(below).ok_or_else(|| {
            let e = not_found(below);
            QmpError::generic(format!("Could not open backing file: {}", e.desc))
        })?;
        let Kind::Format(b) = &n.kind else {
            return Err(QmpError::generic(format!(
                "node '{below}' is a protocol node: 'backing' takes a format node"
            )));
        };
        if let Some(User::Node {
            name: other,
            role: Role::Backing,
        }) = &n.user
        {
            return Err(busy(below, other));
        }
        Ok(b)
    }

    /// QMP `blockdev-del`: removes `name` if nothing holds it, and lets go
    /// of the nodes it held.
    pub(crate) fn del(&mut self, name: &str) -> Result<(), QmpError> {
        let node = self.nodes.get(name).ok_or_else(|| {
            QmpError::generic(format!("Failed to find node with node-name='{name}'"))
        })?;
        match &node.user {
            None => {}
            Some(User::Device(_)) => {
                return Err(QmpError::generic(format!("Node {name} is in use")));
            }
            Some(User::Node {
                role: Role::File, ..
            }) => {
                return Err(QmpError::generic(format!("Block device {name} is in use")));
            }
            Some(User::Node {
                name: above,
                role: Role::Backing,
            }) => return Err(busy(name, above)),
        }
        let node = self.nodes.remove(name).expect("looked up above");
        for child in &node.children {
            if let Some(c) = self.nodes.get_mut(child) {
                c.user = None;
            }
        }
        if let Kind::Protocol(p) = &node.kind {
            crate::fdset::forget(&p.filename);
        }
        if let Kind::Format(f) = &node.kind {
            if f.file.node_name.is_none() {
                // An inline file node goes with its format node.
                crate::fdset::forget(&f.file.filename);
            }
        }
        Ok(())
    }

    /// A device takes format node `name`.
    pub(crate) fn attach(&mut self, name: &str, user: User) -> Result<FormatNode, QmpError> {
        let n = self.nodes.get_mut(name).ok_or_else(|| not_found(name))?;
        let Kind::Format(f) = &n.kind else {
            return Err(QmpError::generic(format!(
                "node '{name}' is a protocol node: a device takes a format node"
            )));
        };
        if n.user.is_some() {
            return Err(QmpError::generic(format!("Node {name} is in use")));
        }
        n.user = Some(user);
        Ok(f.clone())
    }

    /// Checks `blockdev-snapshot`'s `node` and `overlay` as QEMU does;
    /// returns the device that uses `node` and the image it is to use:
    /// `overlay` over `node` (read-only from then on).
    pub(crate) fn snapshot_plan(
        &self,
        node: &str,
        overlay: &str,
    ) -> Result<(String, FormatNode), QmpError> {
        let n = self.nodes.get(node).ok_or_else(|| not_found(node))?;
        let Kind::Format(active) = &n.kind else {
            return Err(QmpError::generic(format!(
                "node '{node}' is a protocol node: snapshots are of format nodes"
            )));
        };
        let device = match &n.user {
            Some(User::Device(d)) => d.clone(),
            Some(User::Node {
                name: above,
                role: Role::Backing,
            }) => return Err(busy(node, above)),
            _ => {
                return Err(QmpError::generic(format!(
                    "node '{node}' is not the active layer of a disk"
                )))
            }
        };
        let o = self.nodes.get(overlay).ok_or_else(|| not_found(overlay))?;
        // A file node cannot have a backing image, whoever uses it.
        let Kind::Format(top) = &o.kind else {
            return Err(QmpError::generic(
                "The overlay does not support backing images",
            ));
        };
        if o.user.is_some() {
            return Err(QmpError::generic("The overlay is already in use"));
        }
        match (top.format, &top.backing) {
            (rvirt_vmm_config::ImageFormat::Raw, _) => {
                return Err(QmpError::generic(
                    "The overlay does not support backing images",
                ))
            }
            (_, Backing::Node(_)) => {
                return Err(QmpError::generic("The overlay already has a backing image"))
            }
            _ => {}
        }
        if top.read_only() {
            return Err(QmpError::generic(format!(
                "The overlay '{overlay}' is read-only"
            )));
        }
        let mut below = active.clone();
        below.read_only = true;
        let mut image = top.clone();
        image.backing = Backing::Node(Box::new(below));
        Ok((device, image))
    }

    /// Records a snapshot made: `overlay` (now `image`) is the device's,
    /// `node` its backing image.
    pub(crate) fn snapshot_done(&mut self, node: &str, overlay: &str, image: FormatNode) {
        let device = self.nodes.get(node).and_then(|n| n.user.clone());
        if let Some(n) = self.nodes.get_mut(node) {
            n.user = Some(User::Node {
                name: overlay.to_string(),
                role: Role::Backing,
            });
            if let Kind::Format(f) = &mut n.kind {
                f.read_only = true;
            }
        }
        if let Some(o) = self.nodes.get_mut(overlay) {
            o.user = device;
            o.kind = Kind::Format(image);
            o.children.push(node.to_string());
        }
    }

    /// Records a commit's pivot: `base` is the device's again, `top`
    /// (the overlay) is free, for `blockdev-del`.
    pub(crate) fn commit_done(&mut self, top: &str, base: &str) {
        let device = self.nodes.get(top).and_then(|n| n.user.clone());
        if let Some(t) = self.nodes.get_mut(top) {
            t.user = None;
            t.children.retain(|c| c != base);
        }
        if let Some(b) = self.nodes.get_mut(base) {
            b.user = device;
            if let Kind::Format(f) = &mut b.kind {
                f.read_only = false;
            }
        }
    }

    /// Lets go of `name` (a device unplugged).
    pub(crate) fn detach(&mut self, name: &str) {
        if let Some(n) = self.nodes.get_mut(name) {
            n.user = None;
        }
    }
}

/// QEMU's answer when a backing image is wanted by a second overlay.
fn busy(name: &str, above: &str) -> QmpError {
    QmpError::generic(format!(
        "Node '{name}' is busy: node is used as backing hd of '{above}'"
    ))
}

/// Opens a protocol node's file as QEMU does at `blockdev-add`: a passed
/// descriptor is taken from its set and kept; a path must open. With
/// `auto-read-only` (libvirt sets it), a file that cannot be opened for
/// writing is opened read-only; rvirt then keeps the node read-only.
fn open_protocol(mut p: ProtocolNode) -> Result<ProtocolNode, QmpError> {
    let path = p.filename.clone();
    let passed = rvirt_vmm_config::sandbox::fdset_of(&path).is_some();
    let fail = |e: &std::io::Error, write: bool| {
        if passed {
            // QEMU's words, with the errno it reports for each case.
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
                _ => strerror(e),
            };
            let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
            return QmpError::generic(format!(
                "Could not dup FD for {} flags {flags}: {why}",
                path.display()
            ));
        }
        QmpError::generic(format!(
            "Could not open '{}': {}",
            path.display(),
            strerror(e)
        ))
    };
    let open = |write: bool| -> Result<std::fs::File, std::io::Error> {
        match crate::fdset::open(&path, true, write) {
            Some(f) => f,
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .open(&path),
        }
    };
    let file = match open(!p.read_only) {
        Ok(f) => f,
        Err(e) if !p.read_only && p.auto_read_only && is_read_only_error(&e) => {
            p.read_only = true;
            open(false).map_err(|e| fail(&e, false))?
        }
        Err(e) => return Err(fail(&e, !p.read_only)),
    };
    if passed {
        crate::fdset::keep(&path, file);
    }
    Ok(p)
}

fn is_read_only_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    ) || e.kind() == std::io::ErrorKind::PermissionDenied
}

/// Reads a format node's image and the chain it names, read-only, as
/// QEMU opens it at `blockdev-add`: a file that is no such image, a
/// refused feature or a missing backing image is an error now.
fn check_image(node: &FormatNode) -> Result<(), QmpError> {
    let opts = OpenOptions {
        read_only: true,
        direct: false,
        no_flush: true,
        write_cache: true,
        discard: false,
        aio: AioMode::Sync,
        queue_bound: 1,
    };
    let passed = |path: &Path, write: bool| crate::fdset::open(path, true, write);
    Disk::<()>::open_image_with(&crate::disk::image_spec(node), &opts, &passed)
        .map(drop)
        .map_err(|e| QmpError::generic(crate::error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_as_qemu_takes_them() {
        assert!(well_formed("libvirt-1-format"));
        assert!(well_formed("a.b_c"));
        assert!(!well_formed("1bad"));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert_eq!(
            strerror(&std::io::Error::from_raw_os_error(libc::ENOENT)),
            "No such file or directory"
        );
    }

    /// libvirt's command line: a device on `libvirt-1-format` over
    /// `libvirt-1-storage`; a `-drive` id.
    fn libvirt_graph() -> BlockNodes {
        let cfg = rvirt_vmm_config::parse(&[
            "-kernel",
            "/k",
            "-blockdev",
            r#"{"driver":"file","filename":"/i.img","node-name":"libvirt-1-storage"}"#,
            "-blockdev",
            r#"{"node-name":"libvirt-1-format","driver":"raw","file":"libvirt-1-storage"}"#,
            "-device",
            r#"{"driver":"virtio-blk-device","drive":"libvirt-1-format","id":"virtio-disk0"}"#,
            "-drive",
            "file=/d.img,format=raw,if=none,id=drive0",
            "-device",
            "virtio-blk-device,drive=drive0",
        ])
        .unwrap();
        let rvirt_vmm_config::Action::Run(cfg) = cfg else {
            panic!("not a VM")
        };
        BlockNodes::new(&cfg)
    }

    #[test]
    fn the_command_line_s_nodes_are_held_by_their_users() {
        let mut g = libvirt_graph();
        assert_eq!(
            g.user("libvirt-1-format"),
            Some(&User::Device("virtio-disk0".into()))
        );
        assert_eq!(
            g.del("libvirt-1-format").unwrap_err().desc,
            "Node libvirt-1-format is in use"
        );
        assert_eq!(
            g.del("libvirt-1-storage").unwrap_err().desc,
            "Block device libvirt-1-storage is in use"
        );
        let args = serde_json::json!({"driver": "file", "filename": "/x", "node-name": "drive0"});
        assert_eq!(
            g.add(args.as_object().unwrap()).unwrap_err().desc,
            "node-name=drive0 is conflicting with a device id"
        );
        assert!(g
            .attach("libvirt-1-format", User::Device("x".into()))
            .is_err());
        assert!(g.contains("libvirt-1-storage"));
        assert!(g.format_node("libvirt-1-storage").is_none());
        g.detach("libvirt-1-format");
        g.del("libvirt-1-format").unwrap();
        g.del("libvirt-1-storage").unwrap();
        assert!(!g.contains("libvirt-1-storage"));
    }
}
