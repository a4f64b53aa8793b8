//! The domain commands, one module per kind of work; each prints what
//! virsh prints and returns the error lines virsh would print.

mod console;
mod display;
mod edit;
pub(crate) mod event;
mod info;
mod lifecycle;
mod list;
mod native;

use lifecycle::Op;

use crate::cli::DomainCommand;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;

/// Runs one domain command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &DomainCommand) -> Result<(), CmdError> {
    let name = c.name();
    match c {
        DomainCommand::List(o) => list::list(s, out, o),
        DomainCommand::Define { file, validate } => {
            lifecycle::define(s, out, file.get(name)?, *validate)
        }
        DomainCommand::Create {
            file,
            console,
            paused,
            autodestroy,
            validate,
            reset_nvram,
        } => {
            let flags = lifecycle::start_flags(&[
                (*paused, lifecycle::START_PAUSED),
                (*autodestroy, lifecycle::START_AUTODESTROY),
                (*validate, lifecycle::START_VALIDATE),
                (*reset_nvram, lifecycle::START_RESET_NVRAM),
            ]);
            lifecycle::create(s, out, file.get(name)?, flags, *console)
        }
        DomainCommand::Start {
            dom,
            console,
            paused,
            autodestroy,
            bypass_cache,
            force_boot,
            reset_nvram,
        } => {
            let flags = lifecycle::start_flags(&[
                (*paused, lifecycle::START_PAUSED),
                (*autodestroy, lifecycle::START_AUTODESTROY),
                (*bypass_cache, lifecycle::START_BYPASS_CACHE),
                (*force_boot, lifecycle::START_FORCE_BOOT),
                (*reset_nvram, lifecycle::START_RESET_NVRAM),
            ]);
            lifecycle::start(s, out, dom.get(name)?, flags, *console)
        }
        DomainCommand::Undefine {
            dom,
            managed_save,
            snapshots_metadata,
            checkpoints_metadata,
            nvram,
            keep_nvram,
            tpm,
            keep_tpm,
        } => {
            let flags = lifecycle::start_flags(&[
                (*managed_save, 1),
                (*snapshots_metadata, 2),
                (*nvram, 4),
                (*keep_nvram, 8),
                (*checkpoints_metadata, 16),
                (*tpm, 32),
                (*keep_tpm, 64),
            ]);
            lifecycle::undefine(s, out, dom.get(name)?, flags)
        }
        DomainCommand::Shutdown { dom, mode } => {
            let flags = lifecycle::mode_flags(mode.as_deref())?;
            lifecycle::simple(s, out, Op::Shutdown, dom.get(name)?, flags)
        }
        DomainCommand::Reboot { dom, mode } => {
            let flags = lifecycle::mode_flags(mode.as_deref())?;
            lifecycle::simple(s, out, Op::Reboot, dom.get(name)?, flags)
        }
        DomainCommand::Destroy {
            dom,
            graceful,
            remove_logs,
        } => {
            let flags = lifecycle::start_flags(&[(*graceful, 1), (*remove_logs, 2)]);
            lifecycle::simple(s, out, Op::Destroy, dom.get(name)?, flags)
        }
        DomainCommand::Suspend { dom } => lifecycle::simple(s, out, Op::Suspend, dom.get(name)?, 0),
        DomainCommand::Resume { dom } => lifecycle::simple(s, out, Op::Resume, dom.get(name)?, 0),
        DomainCommand::InjectNmi { dom } => lifecycle::inject_nmi(s, dom.get(name)?),
        DomainCommand::Autostart { dom, disable } => {
            lifecycle::autostart(s, out, dom.get(name)?, *disable)
        }
        DomainCommand::Dominfo { dom } => info::dominfo(s, out, dom.get(name)?),
        DomainCommand::Domstate { dom, reason } => info::domstate(s, out, dom.get(name)?, *reason),
        DomainCommand::Domid { dom } => info::domid(s, out, dom.get(name)?),
        DomainCommand::Domname { dom } => info::domname(s, out, dom.get(name)?),
        DomainCommand::Domuuid { dom } => info::domuuid(s, out, dom.get(name)?),
        DomainCommand::Dumpxml {
            dom,
            inactive,
            security_info,
            update_cpu,
            migratable,
        } => {
            use rvirt_remote::consts::xml_flags;
            let flags = [
                (*security_info, xml_flags::SECURE),
                (*inactive, xml_flags::INACTIVE),
                (*update_cpu, xml_flags::UPDATE_CPU),
                (*migratable, xml_flags::MIGRATABLE),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |acc, (_, f)| acc | f);
            info::dumpxml(s, out, dom.get(name)?, flags)
        }
        DomainCommand::Vcpuinfo { dom, pretty } => info::vcpuinfo(s, out, dom.get(name)?, *pretty),
        DomainCommand::Domblklist {
            dom,
            inactive,
            details,
        } => info::domblklist(s, out, dom.get(name)?, *inactive, *details),
        DomainCommand::Domiflist { dom, inactive } => {
            info::domiflist(s, out, dom.get(name)?, *inactive)
        }
        DomainCommand::Edit { dom, skip_validate } => {
            edit::edit(s, out, dom.get(name)?, *skip_validate)
        }
        DomainCommand::Console {
            dom,
            devname,
            force,
            safe,
        } => console::console_cmd(s, out, dom.get(name)?, devname.clone(), *force, *safe),
        DomainCommand::DomxmlToNative {
            format,
            domain,
            xml,
            xml_opt,
        } => native::domxml_to_native(
            s,
            out,
            format.as_deref(),
            domain.as_deref(),
            xml.as_deref().or(xml_opt.as_deref()),
        ),
        DomainCommand::Event(o) => event::event(s, out, o),
        DomainCommand::Vncdisplay { dom } => display::vncdisplay(s, out, dom.get(name)?),
        DomainCommand::Domdisplay {
            dom,
            include_password,
            type_,
            all,
        } => display::domdisplay(
            s,
            out,
            dom.get(name)?,
            *include_password,
            type_.as_deref(),
            *all,
        ),
        DomainCommand::Screenshot {
            dom,
            file,
            screen,
            file_pos,
        } => display::screenshot(
            s,
            out,
            dom.get(name)?,
            file.as_deref().or(file_pos.as_deref()),
            screen.as_deref(),
        ),
    }
}
