//! define, create, start, undefine, shutdown, destroy, reboot, suspend,
//! resume, autostart.
//!
//! virsh names the domain in its messages by the argument as typed
//! (`Domain '2' suspended`), except `start`, `define` and `create`, which
//! use the domain's name.

use rvirt_remote::calls::{
    DomainCreateXmlArgs, DomainDefineXmlArgs, DomainDefineXmlFlagsArgs, DomainFlagsArgs,
    DomainLookupByUuidArgs, DomainSetAutostartArgs,
};
use rvirt_remote::consts::VIR_DOMAIN_START_PAUSED;
use rvirt_remote::procs;

use super::console::run_console;
use crate::cmd::read_file;
use crate::error::{is_no_support, CmdError};
use crate::out::Out;
use crate::session::{By, Session};

/// `VIR_DOMAIN_DEFINE_VALIDATE`.
pub const DEFINE_VALIDATE: u32 = 1;
/// `virDomainCreateFlags`.
pub const START_PAUSED: u32 = VIR_DOMAIN_START_PAUSED;
pub const START_AUTODESTROY: u32 = 1 << 1;
pub const START_BYPASS_CACHE: u32 = 1 << 2;
pub const START_FORCE_BOOT: u32 = 1 << 3;
pub const START_VALIDATE: u32 = 1 << 4;
pub const START_RESET_NVRAM: u32 = 1 << 5;

/// ORs the flags whose option is on.
pub fn start_flags(opts: &[(bool, u32)]) -> u32 {
    opts.iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, f)| acc | f)
}

/// `--mode acpi,agent,...` of shutdown and reboot as
/// `virDomainShutdownFlagValues`, refused with virsh's words.
pub fn mode_flags(mode: Option<&str>) -> Result<u32, CmdError> {
    let Some(mode) = mode else { return Ok(0) };
    let mut flags = 0;
    for m in mode.split(',') {
        flags |= match m {
            "acpi" => 1,
            "agent" => 2,
            "initctl" => 4,
            "signal" => 8,
            "paravirt" => 16,
            other => {
                return Err(CmdError::msg(format!(
                    "Unknown mode {other} value, expecting 'acpi', 'agent', 'initctl', 'signal' or 'paravirt'"
                )))
            }
        };
    }
    Ok(flags)
}

pub fn define(s: &mut Session, out: &Out, file: &str, validate: bool) -> Result<(), CmdError> {
    let xml = read_file(file)?;
    let ctx = || format!("Failed to define domain from {file}");
    let dom = if validate {
        s.call::<procs::DomainDefineXmlFlags>(&DomainDefineXmlFlagsArgs {
            xml,
            flags: DEFINE_VALIDATE,
        })
    } else {
        s.call::<procs::DomainDefineXml>(&DomainDefineXmlArgs { xml })
    }
    .map_err(|e| CmdError::from(e).context(ctx()))?
    .dom;
    out.extra(&format!("Domain '{}' defined from {file}\n", dom.name));
    Ok(())
}

pub fn create(
    s: &mut Session,
    out: &Out,
    file: &str,
    flags: u32,
    console: bool,
) -> Result<(), CmdError> {
    let xml_desc = read_file(file)?;
    let dom = s
        .call::<procs::DomainCreateXml>(&DomainCreateXmlArgs { xml_desc, flags })
        .map_err(|e| CmdError::from(e).context(format!("Failed to create domain from {file}")))?
        .dom;
    out.extra(&format!("Domain '{}' created from {file}\n", dom.name));
    if console {
        run_console(s, out, &dom, None, 0)?;
    }
    Ok(())
}

pub fn start(
    s: &mut Session,
    out: &Out,
    arg: &str,
    flags: u32,
    console: bool,
) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::NAME_UUID)?;
    if dom.id != -1 {
        return Err(CmdError::msg("Domain is already active"));
    }
    let ctx = || format!("Failed to start domain '{}'", dom.name);
    let started = if flags != 0 {
        s.call::<procs::DomainCreateWithFlags>(&DomainFlagsArgs {
            dom: dom.clone(),
            flags,
        })
        .map(|r| r.dom)
    } else {
        // DOMAIN_CREATE returns nothing; libvirt's client looks the
        // domain up again to learn its new id, and so do we.
        s.call::<procs::DomainCreate>(&Session::dom_args(&dom))
            .and_then(|()| {
                s.call::<procs::DomainLookupByUuid>(&DomainLookupByUuidArgs { uuid: dom.uuid })
            })
            .map(|r| r.dom)
    }
    .map_err(|e| CmdError::from(e).context(ctx()))?;
    out.extra(&format!("Domain '{}' started\n", started.name));
    if console {
        run_console(s, out, &started, None, 0)?;
    }
    Ok(())
}

pub fn undefine(s: &mut Session, out: &Out, arg: &str, flags: u32) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let da = Session::dom_args(&dom);
    let df = DomainFlagsArgs {
        dom: dom.clone(),
        flags: 0,
    };
    let uf = DomainFlagsArgs {
        dom: dom.clone(),
        flags,
    };
    // virsh asks these to pick undefine flags; rvirt needs none of them,
    // but asks the same questions so the daemon sees virsh's calls.
    let _ = s.call::<procs::DomainIsActive>(&da);
    let _ = s.call::<procs::DomainHasManagedSaveImage>(&df);
    let _ = s.call::<procs::DomainSnapshotNum>(&df);
    let r = match s.call::<procs::DomainUndefineFlags>(&uf) {
        Err(e) if is_no_support(&e) && flags == 0 => s.call::<procs::DomainUndefine>(&da),
        other => other,
    };
    r.map_err(|e| CmdError::from(e).context(format!("Failed to undefine domain '{arg}'")))?;
    out.extra(&format!("Domain '{arg}' has been undefined\n"));
    Ok(())
}

/// The commands that are one call on a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Shutdown,
    Destroy,
    Reboot,
    Suspend,
    Resume,
}

/// The one-call commands: the call (the `*_FLAGS` form when there are
/// flags, as virsh chooses), virsh's failure and success wording.
pub fn simple(s: &mut Session, out: &Out, op: Op, arg: &str, flags: u32) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let da = Session::dom_args(&dom);
    let df = DomainFlagsArgs {
        dom: dom.clone(),
        flags,
    };
    let (r, fail, done) = match op {
        Op::Shutdown => (
            if flags == 0 {
                s.call::<procs::DomainShutdown>(&da)
            } else {
                s.call::<procs::DomainShutdownFlags>(&df)
            },
            "Failed to shutdown domain",
            "is being shutdown",
        ),
        Op::Destroy => (
            if flags == 0 {
                s.call::<procs::DomainDestroy>(&da)
            } else {
                s.call::<procs::DomainDestroyFlags>(&df)
            },
            "Failed to destroy domain",
            "destroyed",
        ),
        Op::Reboot => (
            s.call::<procs::DomainReboot>(&df),
            "Failed to reboot domain",
            "is being rebooted",
        ),
        Op::Suspend => (
            s.call::<procs::DomainSuspend>(&da),
            "Failed to suspend domain",
            "suspended",
        ),
        Op::Resume => (
            s.call::<procs::DomainResume>(&da),
            "Failed to resume domain",
            "resumed",
        ),
    };
    r.map_err(|e| CmdError::from(e).context(format!("{fail} '{arg}'")))?;
    out.extra(&format!("Domain '{arg}' {done}\n"));
    Ok(())
}

/// `inject-nmi`: the call alone; virsh prints nothing of its own, not
/// even a failure line before libvirt's error.
pub fn inject_nmi(s: &mut Session, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    s.call::<procs::DomainInjectNmi>(&DomainFlagsArgs { dom, flags: 0 })?;
    Ok(())
}

pub fn autostart(s: &mut Session, out: &Out, arg: &str, disable: bool) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let (fail, done) = if disable {
        ("Failed to unmark domain '{}' as autostarted", "unmarked")
    } else {
        ("Failed to mark domain '{}' as autostarted", "marked")
    };
    s.call::<procs::DomainSetAutostart>(&DomainSetAutostartArgs {
        dom,
        autostart: i32::from(!disable),
    })
    .map_err(|e| CmdError::from(e).context(fail.replace("{}", arg)))?;
    out.extra(&format!("Domain '{arg}' {done} as autostarted\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_flags(None).unwrap(), 0);
        assert_eq!(mode_flags(Some("acpi")).unwrap(), 1);
        assert_eq!(mode_flags(Some("agent,paravirt")).unwrap(), 18);
        assert_eq!(
            mode_flags(Some("foo")).unwrap_err().to_string(),
            "Unknown mode foo value, expecting 'acpi', 'agent', 'initctl', 'signal' or 'paravirt'"
        );
    }

    #[test]
    fn flag_sets() {
        assert_eq!(
            start_flags(&[(true, START_PAUSED), (false, START_FORCE_BOOT)]),
            1
        );
        assert_eq!(
            start_flags(&[(true, START_FORCE_BOOT), (true, START_RESET_NVRAM)]),
            40
        );
        assert_eq!(start_flags(&[]), 0);
    }
}
