//! `-sandbox`, `-runas` and `-add-fd`: how rvirt-vmm confines itself and
//! which descriptors its parent passed in place of paths.

use crate::opts::Opts;
use crate::ConfigError;

/// What a forbidden system call does to the VMM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeccompMode {
    /// The VMM dies, and its log names the call.
    #[default]
    Kill,
    /// The call is allowed and the kernel's audit log names it: for
    /// finding what a filter lacks, never for production.
    Log,
}

/// `elevateprivileges=`: may the VMM change its credentials?
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Elevate {
    Allow,
    /// setuid and friends are forbidden (the VMM never needs them after
    /// `-runas` has dropped to its user).
    #[default]
    Deny,
    /// QEMU's `children`: set no_new_privs, so that nothing spawned gains
    /// privileges. rvirt-vmm spawns nothing, so this is `deny` too.
    Children,
}

/// `-sandbox on[,obsolete=][,elevateprivileges=][,spawn=][,resourcecontrol=]`.
/// Where QEMU keeps a deny-list of calls, rvirt-vmm allows a list per thread
/// kind (crates/vmm/src/sandbox): these options add to the lists what they
/// allow. QEMU's defaults apply: obsolete calls denied, the rest allowed;
/// libvirt asks for all four denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `obsolete=allow`: calls the kernel keeps for old binaries (`uselib`,
    /// `sysfs`, `ustat`, …).
    pub obsolete: bool,
    pub elevate: Elevate,
    /// `spawn=allow`: fork (other than the VMM's own threads) and exec.
    pub spawn: bool,
    /// `resourcecontrol=allow`: scheduler, affinity and priority calls.
    pub resource_control: bool,
    /// rvirt's `x-log=on`: [`SeccompMode::Log`].
    pub mode: SeccompMode,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            obsolete: false,
            elevate: Elevate::Allow,
            spawn: true,
            resource_control: true,
            mode: SeccompMode::Kill,
        }
    }
}

fn allow_deny(o: &mut Opts, key: &str, default: bool) -> Result<bool, ConfigError> {
    match o.get(key).as_deref() {
        None => Ok(default),
        Some("allow") => Ok(true),
        Some("deny") => Ok(false),
        Some(v) => Err(o.error(format!("invalid value '{v}' for '{key}' (allow or deny)"))),
    }
}

/// Parses `-sandbox`'s value; `None` for `-sandbox off`.
pub fn parse_sandbox(v: &str) -> Result<Option<SandboxConfig>, ConfigError> {
    let mut o = Opts::parse("-sandbox", v, Some("enable"))?;
    let on = o
        .get_bool("enable")?
        .ok_or_else(|| o.error("'on' or 'off' is required".into()))?;
    let d = SandboxConfig::default();
    let cfg = SandboxConfig {
        obsolete: allow_deny(&mut o, "obsolete", d.obsolete)?,
        elevate: match o.get("elevateprivileges").as_deref() {
            None | Some("allow") => Elevate::Allow,
            Some("deny") => Elevate::Deny,
            Some("children") => Elevate::Children,
            Some(v) => {
                return Err(o.error(format!(
                    "invalid value '{v}' for 'elevateprivileges' (allow, deny or children)"
                )))
            }
        },
        spawn: allow_deny(&mut o, "spawn", d.spawn)?,
        resource_control: allow_deny(&mut o, "resourcecontrol", d.resource_control)?,
        mode: if o.get_bool("x-log")? == Some(true) {
            SeccompMode::Log
        } else {
            SeccompMode::Kill
        },
    };
    o.finish()?;
    Ok(on.then_some(cfg))
}

/// `-runas`: the user the VMM becomes once everything is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// A user name, looked up in the user database at start.
    User(String),
    /// `UID:GID`, numerically (QEMU's other form).
    Ids(u32, u32),
}

/// Parses `-runas USER` or `-runas UID:GID`.
pub fn parse_runas(v: &str) -> Result<RunAs, ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::new("-runas", "empty user name"));
    }
    if let Some((u, g)) = v.split_once(':') {
        let id = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| ConfigError::new("-runas", format!("invalid user '{v}'")))
        };
        return Ok(RunAs::Ids(id(u)?, id(g)?));
    }
    Ok(RunAs::User(v.to_string()))
}

/// `-add-fd fd=N,set=M[,opaque=TEXT]`: descriptor N, which the parent
/// left open, joins fd set M; a file option naming `/dev/fdset/M` takes a
/// copy of it instead of opening a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFd {
    pub fd: i32,
    pub set: u32,
    pub opaque: Option<String>,
}

/// Parses one `-add-fd`.
pub fn parse_add_fd(v: &str) -> Result<AddFd, ConfigError> {
    let mut o = Opts::parse("-add-fd", v, None)?;
    let fd = o.require("fd")?;
    let fd: i32 = fd
        .parse()
        .map_err(|_| o.error(format!("invalid fd '{fd}'")))?;
    // As QEMU: the standard descriptors are the VMM's own.
    if fd <= 2 {
        return Err(o.error("fd cannot be stdin, stdout or stderr".into()));
    }
    let set = o.require("set")?;
    let set: u32 = set
        .parse()
        .map_err(|_| o.error(format!("invalid set '{set}'")))?;
    let opaque = o.get("opaque");
    o.finish()?;
    Ok(AddFd { fd, set, opaque })
}

/// The set a `/dev/fdset/N` path names, if it is one.
pub fn fdset_of(path: &std::path::Path) -> Option<u32> {
    path.to_str()?.strip_prefix("/dev/fdset/")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_forms() {
        assert_eq!(parse_sandbox("off").unwrap(), None);
        assert_eq!(parse_sandbox("on").unwrap(), Some(SandboxConfig::default()));
        let libvirt = parse_sandbox(
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        )
        .unwrap()
        .unwrap();
        assert!(!libvirt.obsolete && !libvirt.spawn && !libvirt.resource_control);
        assert_eq!(libvirt.elevate, Elevate::Deny);
        assert_eq!(
            parse_sandbox("on,x-log=on").unwrap().unwrap().mode,
            SeccompMode::Log
        );
        let e = parse_sandbox("on,spawn=maybe").unwrap_err();
        assert!(e.to_string().contains("spawn"), "{e}");
        assert!(parse_sandbox("on,bogus=1").is_err());
        assert!(parse_sandbox("obsolete=deny").is_err());
    }

    #[test]
    fn runas_and_add_fd() {
        assert_eq!(parse_runas("qemu").unwrap(), RunAs::User("qemu".into()));
        assert_eq!(parse_runas("107:108").unwrap(), RunAs::Ids(107, 108));
        assert!(parse_runas("1:x").is_err());
        assert_eq!(
            parse_add_fd("set=2,fd=7,opaque=serial0-source").unwrap(),
            AddFd {
                fd: 7,
                set: 2,
                opaque: Some("serial0-source".into())
            }
        );
        assert!(parse_add_fd("fd=1,set=0").is_err());
        assert!(parse_add_fd("fd=4").is_err());
        assert_eq!(fdset_of(std::path::Path::new("/dev/fdset/3")), Some(3));
        assert_eq!(fdset_of(std::path::Path::new("/dev/fdset/x")), None);
        assert_eq!(fdset_of(std::path::Path::new("/tmp/a")), None);
    }
}
