//! Landlock: the files the command line names, and nothing else.
//!
//! Rules are taken from the configuration, as Cloud Hypervisor does: files
//! read (kernel, initrd, firmware, fw_cfg files, read-only disks, the
//! entropy source), files written (disks, chardev files), directories a
//! file or socket is created in (chardev files that may not exist yet,
//! monitor sockets, a VNC unix socket, the pid file), and the devices the VM needs (/dev/kvm,
//! /dev/net/tun for a tap by name, /dev/ptmx and /dev/pts for ptys).
//! `/dev/fdset/N` names a descriptor, not a path, and needs no rule. With
//! Landlock ABI 6 the process also may not signal a process outside its
//! own domain nor connect to an abstract socket outside it. On a kernel
//! without Landlock this layer is skipped (best effort), the others stay.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, Scope, ABI,
};
use rvirt_vmm_config::sandbox::fdset_of;
use rvirt_vmm_config::{Backing, ChardevBackend, VirtioConfig, VmConfig};

const ABI_USED: ABI = ABI::V6;

#[derive(Debug)]
struct Rule {
    path: PathBuf,
    access: BitFlags<AccessFs>,
}

/// Reading, and a device's ioctls (a block device's size).
fn read() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::IoctlDev
}

/// Reading and writing, and a device's ioctls (KVM's, a tap's, a pty's).
fn read_write() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev
}

/// Creating, replacing and removing files in a directory.
fn make_in_dir() -> BitFlags<AccessFs> {
    AccessFs::MakeReg
        | AccessFs::MakeSock
        | AccessFs::RemoveFile
        | AccessFs::WriteFile
        | AccessFs::Truncate
        | AccessFs::ReadFile
}

fn file(rules: &mut Vec<Rule>, path: &Path, access: BitFlags<AccessFs>) {
    if fdset_of(path).is_some() {
        return;
    }
    rules.push(Rule {
        path: path.to_path_buf(),
        access,
    });
}

fn parent(rules: &mut Vec<Rule>, path: &Path) {
    if fdset_of(path).is_some() {
        return;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    rules.push(Rule {
        path: dir,
        access: make_in_dir(),
    });
}

fn chardev(rules: &mut Vec<Rule>, b: &ChardevBackend) {
    match b {
        ChardevBackend::File { path, .. } => {
            if path.exists() {
                file(rules, path, read_write());
            } else {
                parent(rules, path);
            }
        }
        ChardevBackend::Socket { path, .. } => parent(rules, path),
        ChardevBackend::Pty => {
            file(rules, Path::new("/dev/ptmx"), read_write());
            file(rules, Path::new("/dev/pts"), read_write());
        }
        ChardevBackend::Stdio | ChardevBackend::Fd(_) | ChardevBackend::Null => {}
    }
}

/// Read rules for the backing images of `node`: the nodes the command
/// line names, or the files its qcow2 header names (read here, before the
/// sandbox, as the block layer will read them: only with a named format,
/// by a path relative to the image's directory).
fn backing_chain(rules: &mut Vec<Rule>, node: &rvirt_vmm_config::FormatNode) {
    match &node.backing {
        Backing::None => {}
        Backing::Node(below) => {
            file(rules, below.path(), read());
            backing_chain(rules, below);
        }
        Backing::FromImage => {
            if node.format != rvirt_vmm_config::ImageFormat::Qcow2
                || fdset_of(node.path()).is_some()
            {
                return;
            }
            let mut image = node.path().to_path_buf();
            for _ in 0..rvirt_block::MAX_CHAIN {
                let Ok(info) = rvirt_block::image::inspect(&image) else {
                    return;
                };
                let Some(b) = info.backing.filter(|b| b.format.is_some()) else {
                    return;
                };
                let below = b.path_from(&image);
                file(rules, &below, read());
                if b.format.as_deref() != Some("qcow2") {
                    return;
                }
                image = below;
            }
        }
    }
}

/// The rules for `config`.
fn rules(config: &VmConfig) -> Vec<Rule> {
    let mut r = Vec::new();
    file(&mut r, Path::new("/dev/kvm"), read_write());
    // -daemonize points the standard descriptors there once started.
    file(&mut r, Path::new("/dev/null"), read_write());
    for p in [&config.kernel, &config.initrd, &config.bios]
        .into_iter()
        .flatten()
    {
        file(&mut r, p, read());
    }
    // The std VGA's BIOS, read when the device is made (after this).
    if let Some(rom) = config.display.as_ref().and_then(|d| d.romfile.as_ref()) {
        file(&mut r, rom, read());
    }
    for item in &config.fw_cfg {
        if let rvirt_vmm_config::FwCfgSource::File(p) = &item.source {
            file(&mut r, p, read());
        }
    }
    for c in &config.chardevs {
        chardev(&mut r, &c.backend);
    }
    for s in &config.serials {
        chardev(&mut r, &s.backend);
    }
    for m in &config.monitors {
        chardev(&mut r, &m.backend);
    }
    if let Some(d) = &config.debugcon {
        chardev(&mut r, &d.backend);
    }
    for v in &config.virtio {
        match v {
            VirtioConfig::Rng { filename, .. } => file(&mut r, filename, read()),
            VirtioConfig::Blk(d) => {
                let access = if d.read_only() { read() } else { read_write() };
                file(&mut r, d.path(), access);
                backing_chain(&mut r, &d.image);
            }
            VirtioConfig::Net(n) => {
                if matches!(
                    n.backend,
                    rvirt_vmm_config::Netdev::Tap(rvirt_vmm_config::TapSource::Name(_))
                ) {
                    file(&mut r, Path::new("/dev/net/tun"), read_write());
                }
            }
            VirtioConfig::Console(c) => {
                if let Some(p) = &c.port {
                    chardev(&mut r, &p.backend);
                }
            }
            VirtioConfig::Scsi(s) => {
                for d in s.luns.iter().filter_map(|l| l.disk.as_ref()) {
                    let access = if d.read_only() { read() } else { read_write() };
                    file(&mut r, d.path(), access);
                    backing_chain(&mut r, &d.image);
                }
            }
            VirtioConfig::Balloon(_) | VirtioConfig::Input(_) => {}
        }
    }
    for n in &config.nics {
        if matches!(
            n.net.backend,
            rvirt_vmm_config::Netdev::Tap(rvirt_vmm_config::TapSource::Name(_))
        ) {
            file(&mut r, Path::new("/dev/net/tun"), read_write());
        }
    }
    if let Some(rvirt_vmm_config::VncConfig {
        listen: rvirt_vmm_config::VncListen::Unix(p),
        ..
    }) = &config.vnc
    {
        // Bound after the sandbox's start, a stale file replaced.
        parent(&mut r, p);
    }
    if let Some(p) = &config.pidfile {
        parent(&mut r, p);
    }
    r
}

/// Restricts the calling thread, and every thread and process it creates
/// from now on, to `config`'s files.
pub fn restrict(config: &VmConfig) -> Result<(), RulesetError> {
    let mut created = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))?
        .scope(Scope::from_all(ABI_USED))?
        .create()?;
    for rule in rules(config) {
        // A path that does not exist yet fails at open time with the error
        // the VMM would report anyway; it needs no rule.
        let Ok(fd) = PathFd::new(&rule.path) else {
            continue;
        };
        let is_dir = rule.path.is_dir();
        // Rules on a file may only carry file rights.
        let access = if is_dir {
            rule.access
        } else {
            rule.access & AccessFs::from_file(ABI_USED)
        };
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    let status = created.restrict_self()?;
    tracing::debug!(?status, "landlock");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_command_line_and_skip_fdsets() {
        let cfg = match rvirt_vmm_config::parse(&[
            "-kernel",
            "/boot/vmlinuz",
            "-drive",
            "file=/dev/fdset/1,format=raw,if=none,id=d0",
            "-device",
            "virtio-blk-device,drive=d0",
            "-drive",
            "file=/srv/ro.img,format=raw,if=none,id=d1,readonly=on",
            "-device",
            "virtio-blk-device,drive=d1",
            "-add-fd",
            "fd=3,set=1",
            "-serial",
            "pty",
            "-vnc",
            "unix:/run/vm/vnc.sock",
            "-device",
            "VGA,romfile=/srv/vga.rom",
        ])
        .unwrap()
        {
            rvirt_vmm_config::Action::Run(c) => c,
            other => panic!("{other:?}"),
        };
        let r = rules(&cfg);
        let paths: Vec<&Path> = r.iter().map(|r| r.path.as_path()).collect();
        assert!(paths.contains(&Path::new("/boot/vmlinuz")));
        assert!(paths.contains(&Path::new("/srv/ro.img")));
        assert!(paths.contains(&Path::new("/dev/kvm")));
        assert!(paths.contains(&Path::new("/dev/ptmx")));
        assert!(paths.contains(&Path::new("/run/vm")));
        assert!(paths.contains(&Path::new("/srv/vga.rom")), "the VGA BIOS");
        assert!(!paths.iter().any(|p| p.starts_with("/dev/fdset")));
        let ro = r
            .iter()
            .find(|r| r.path == Path::new("/srv/ro.img"))
            .unwrap();
        assert_eq!(ro.access, read());
    }
}
