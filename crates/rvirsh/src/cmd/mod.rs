//! The commands, one module per group; each prints what virsh prints and
//! returns the error lines virsh would print.

mod console;
mod edit;
mod event;
mod host;
mod info;
mod lifecycle;
mod list;

use crate::cli::Command;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;

/// Runs one command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &Command) -> Result<(), CmdError> {
    let name = c.name();
    match c {
        Command::List(o) => list::list(s, out, o),
        Command::Define { file, validate } => lifecycle::define(s, out, file.get(name)?, *validate),
        Command::Create {
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
        Command::Start {
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
        Command::Undefine {
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
        Command::Shutdown { dom, mode } | Command::Reboot { dom, mode } => {
            let flags = lifecycle::mode_flags(mode.as_deref())?;
            lifecycle::simple(s, out, name, dom.get(name)?, flags)
        }
        Command::Destroy {
            dom,
            graceful,
            remove_logs,
        } => {
            let flags = lifecycle::start_flags(&[(*graceful, 1), (*remove_logs, 2)]);
            lifecycle::simple(s, out, name, dom.get(name)?, flags)
        }
        Command::Suspend { dom } | Command::Resume { dom } => {
            lifecycle::simple(s, out, name, dom.get(name)?, 0)
        }
        Command::Autostart { dom, disable } => {
            lifecycle::autostart(s, out, dom.get(name)?, *disable)
        }
        Command::Dominfo { dom } => info::dominfo(s, out, dom.get(name)?),
        Command::Domstate { dom, reason } => info::domstate(s, out, dom.get(name)?, *reason),
        Command::Domid { dom } => info::domid(s, out, dom.get(name)?),
        Command::Domname { dom } => info::domname(s, out, dom.get(name)?),
        Command::Domuuid { dom } => info::domuuid(s, out, dom.get(name)?),
        Command::Dumpxml {
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
        Command::Vcpuinfo { dom, pretty } => info::vcpuinfo(s, out, dom.get(name)?, *pretty),
        Command::Domblklist {
            dom,
            inactive,
            details,
        } => info::domblklist(s, out, dom.get(name)?, *inactive, *details),
        Command::Domiflist { dom, inactive } => info::domiflist(s, out, dom.get(name)?, *inactive),
        Command::Edit { dom, skip_validate } => edit::edit(s, out, dom.get(name)?, *skip_validate),
        Command::Console {
            dom,
            devname,
            force,
            safe,
        } => console::console_cmd(s, out, dom.get(name)?, devname.clone(), *force, *safe),
        Command::Version { daemon } => host::version(s, out, *daemon),
        Command::Uri => {
            out.print(&format!("{}\n", s.target.original));
            Ok(())
        }
        Command::Hostname => host::hostname(s, out),
        Command::Nodeinfo => host::nodeinfo(s, out),
        Command::DomxmlToNative {
            format,
            domain,
            xml,
            xml_opt,
        } => host::domxml_to_native(
            s,
            out,
            format.as_deref(),
            domain.as_deref(),
            xml.as_deref().or(xml_opt.as_deref()),
        ),
        Command::Event(o) => event::event(s, out, o),
        // Answered before connecting (see main).
        Command::Help { .. } => Ok(()),
    }
}

/// Reads an XML file given on the command line, failing as virsh does.
pub fn read_file(path: &str) -> Result<String, CmdError> {
    std::fs::read_to_string(path).map_err(|e| {
        CmdError::msg(format!(
            "Failed to open file '{path}': {}",
            crate::error::strerror(&e)
        ))
    })
}
