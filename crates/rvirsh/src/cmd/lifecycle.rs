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
use super::read_file;
use crate::error::{is_no_support, CmdError};
use crate::out::Out;
use crate::session::{By, Session};

/// `VIR_DOMAIN_DEFINE_VALIDATE`.
pub const DEFINE_VALIDATE: u32 = 1;
/// `VIR_DOMAIN_START_VALIDATE`.
const START_VALIDATE: u32 = 1 << 4;

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
    paused: bool,
    console: bool,
    validate: bool,
) -> Result<(), CmdError> {
    let xml_desc = read_file(file)?;
    let mut flags = 0;
    if paused {
        flags |= VIR_DOMAIN_START_PAUSED;
    }
    if validate {
        flags |= START_VALIDATE;
    }
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
    paused: bool,
    console: bool,
) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::NAME_UUID)?;
    if dom.id != -1 {
        return Err(CmdError::msg("Domain is already active"));
    }
    let ctx = || format!("Failed to start domain '{}'", dom.name);
    let started = if paused {
        s.call::<procs::DomainCreateWithFlags>(&DomainFlagsArgs {
            dom: dom.clone(),
            flags: VIR_DOMAIN_START_PAUSED,
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

pub fn undefine(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let da = Session::dom_args(&dom);
    let df = DomainFlagsArgs {
        dom: dom.clone(),
        flags: 0,
    };
    // virsh asks these to pick undefine flags; rvirt needs none of them,
    // but asks the same questions so the daemon sees virsh's calls.
    let _ = s.call::<procs::DomainIsActive>(&da);
    let _ = s.call::<procs::DomainHasManagedSaveImage>(&df);
    let _ = s.call::<procs::DomainSnapshotNum>(&df);
    let r = match s.call::<procs::DomainUndefineFlags>(&df) {
        Err(e) if is_no_support(&e) => s.call::<procs::DomainUndefine>(&da),
        other => other,
    };
    r.map_err(|e| CmdError::from(e).context(format!("Failed to undefine domain '{arg}'")))?;
    out.extra(&format!("Domain '{arg}' has been undefined\n"));
    Ok(())
}

/// The one-call commands: the call, virsh's failure and success wording.
pub fn simple(s: &mut Session, out: &Out, cmd: &str, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let da = Session::dom_args(&dom);
    let (r, fail, done) = match cmd {
        "shutdown" => (
            s.call::<procs::DomainShutdown>(&da),
            "Failed to shutdown domain",
            "is being shutdown",
        ),
        "destroy" => (
            s.call::<procs::DomainDestroy>(&da),
            "Failed to destroy domain",
            "destroyed",
        ),
        "reboot" => (
            s.call::<procs::DomainReboot>(&DomainFlagsArgs { dom, flags: 0 }),
            "Failed to reboot domain",
            "is being rebooted",
        ),
        "suspend" => (
            s.call::<procs::DomainSuspend>(&da),
            "Failed to suspend domain",
            "suspended",
        ),
        "resume" => (
            s.call::<procs::DomainResume>(&da),
            "Failed to resume domain",
            "resumed",
        ),
        other => return Err(CmdError::msg(format!("unknown command: '{other}'"))),
    };
    r.map_err(|e| CmdError::from(e).context(format!("{fail} '{arg}'")))?;
    out.extra(&format!("Domain '{arg}' {done}\n"));
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
