//! The storage pool commands, with virsh's output (virsh-pool.c).

use rvirt_remote::calls::{
    ConnectListAllArgs, NameArgs, StoragePoolArgs, StoragePoolFlagsArgs,
    StoragePoolSetAutostartArgs, StoragePoolXmlArgs, UuidArgs,
};
use rvirt_remote::consts::storage::{build, create, list, pool_state, XML_INACTIVE};
use rvirt_remote::types::NonnullStoragePool;
use rvirt_remote::{procs, Uuid};

use crate::cli::{BuildOpts, PoolAs, PoolCommand, PoolListOpts};
use crate::cmd::read_file;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;
use crate::table::Table;

/// Runs one pool command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &PoolCommand) -> Result<(), CmdError> {
    let n = c.name();
    match c {
        PoolCommand::List(o) => pool_list(s, out, o),
        PoolCommand::Info { pool, bytes } => pool_info(s, out, pool.get(n)?, *bytes),
        PoolCommand::Dumpxml { pool, inactive } => {
            let p = lookup(s, pool.get(n)?)?;
            let flags = if *inactive { XML_INACTIVE } else { 0 };
            let xml = s
                .call::<procs::StoragePoolGetXmlDesc>(&StoragePoolFlagsArgs { pool: p, flags })?
                .xml;
            out.print(&xml);
            Ok(())
        }
        PoolCommand::Define { file, validate } => {
            let file = file.get(n)?;
            let xml = read_file(file)?;
            let p = s
                .call::<procs::StoragePoolDefineXml>(&StoragePoolXmlArgs {
                    xml,
                    flags: u32::from(*validate),
                })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to define pool from {file}"))
                })?
                .pool;
            out.extra(&format!("Pool {} defined from {file}\n", p.name));
            Ok(())
        }
        PoolCommand::DefineAs(d) => {
            let (name, xml) = pool_xml(d)?;
            if d.print_xml {
                out.print(&xml);
                return Ok(());
            }
            let p = s
                .call::<procs::StoragePoolDefineXml>(&StoragePoolXmlArgs { xml, flags: 0 })
                .map_err(|e| CmdError::from(e).context(format!("Failed to define pool {name}")))?
                .pool;
            out.extra(&format!("Pool {} defined\n", p.name));
            Ok(())
        }
        PoolCommand::Create {
            file,
            build,
            overwrite,
        } => {
            let file = file.get(n)?;
            let xml = read_file(file)?;
            let flags = create_flags(*build, overwrite)?;
            let p = s
                .call::<procs::StoragePoolCreateXml>(&StoragePoolXmlArgs { xml, flags })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to create pool from {file}"))
                })?
                .pool;
            out.extra(&format!("Pool {} created from {file}\n", p.name));
            Ok(())
        }
        PoolCommand::CreateAs {
            def,
            build,
            overwrite,
        } => {
            let (name, xml) = pool_xml(def)?;
            if def.print_xml {
                out.print(&xml);
                return Ok(());
            }
            let flags = create_flags(*build, overwrite)?;
            let p = s
                .call::<procs::StoragePoolCreateXml>(&StoragePoolXmlArgs { xml, flags })
                .map_err(|e| CmdError::from(e).context(format!("Failed to create pool {name}")))?
                .pool;
            out.extra(&format!("Pool {} created\n", p.name));
            Ok(())
        }
        PoolCommand::Build { pool, overwrite } => {
            let arg = pool.get(n)?;
            let p = lookup(s, arg)?;
            let mut flags = 0;
            if overwrite.overwrite {
                flags |= build::OVERWRITE;
            }
            if overwrite.no_overwrite {
                flags |= build::NO_OVERWRITE;
            }
            s.call::<procs::StoragePoolBuild>(&StoragePoolFlagsArgs {
                pool: p.clone(),
                flags,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to build pool {}", p.name)))?;
            out.extra(&format!("Pool {} built\n", p.name));
            Ok(())
        }
        PoolCommand::Start {
            pool,
            build,
            overwrite,
        } => {
            let p = lookup(s, pool.get(n)?)?;
            let flags = create_flags(*build, overwrite)?;
            s.call::<procs::StoragePoolCreate>(&StoragePoolFlagsArgs {
                pool: p.clone(),
                flags,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to start pool {}", p.name)))?;
            out.extra(&format!("Pool {} started\n", p.name));
            Ok(())
        }
        PoolCommand::Destroy { pool } => {
            let p = lookup(s, pool.get(n)?)?;
            s.call::<procs::StoragePoolDestroy>(&StoragePoolArgs { pool: p.clone() })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to destroy pool {}", p.name))
                })?;
            out.extra(&format!("Pool {} destroyed\n", p.name));
            Ok(())
        }
        PoolCommand::Delete { pool } => {
            let p = lookup(s, pool.get(n)?)?;
            s.call::<procs::StoragePoolDelete>(&StoragePoolFlagsArgs {
                pool: p.clone(),
                flags: 0,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to delete pool {}", p.name)))?;
            out.extra(&format!("Pool {} deleted\n", p.name));
            Ok(())
        }
        PoolCommand::Undefine { pool } => {
            let p = lookup(s, pool.get(n)?)?;
            s.call::<procs::StoragePoolUndefine>(&StoragePoolArgs { pool: p.clone() })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to undefine pool {}", p.name))
                })?;
            out.extra(&format!("Pool {} has been undefined\n", p.name));
            Ok(())
        }
        PoolCommand::Autostart { pool, disable } => {
            let p = lookup(s, pool.get(n)?)?;
            s.call::<procs::StoragePoolSetAutostart>(&StoragePoolSetAutostartArgs {
                pool: p.clone(),
                autostart: i32::from(!*disable),
            })
            .map_err(|e| {
                let what = if *disable { "unmark" } else { "mark" };
                CmdError::from(e)
                    .context(format!("failed to {what} pool {} as autostarted", p.name))
            })?;
            let what = if *disable { "unmarked" } else { "marked" };
            out.extra(&format!("Pool {} {what} as autostarted\n", p.name));
            Ok(())
        }
        PoolCommand::Refresh { pool } => {
            let p = lookup(s, pool.get(n)?)?;
            s.call::<procs::StoragePoolRefresh>(&StoragePoolFlagsArgs {
                pool: p.clone(),
                flags: 0,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to refresh pool {}", p.name)))?;
            out.extra(&format!("Pool {} refreshed\n", p.name));
            Ok(())
        }
        PoolCommand::Name { pool } => {
            let arg = pool.as_deref().unwrap_or_default();
            let p = lookup_as(s, arg, true, false)?;
            out.print(&format!("{}\n", p.name));
            Ok(())
        }
        PoolCommand::Uuid { pool } => {
            let p = lookup_as(s, pool.get(n)?, false, true)?;
            out.print(&format!("{}\n", p.uuid));
            Ok(())
        }
    }
}

/// `VIR_STORAGE_POOL_CREATE_*` from `--build`, `--overwrite`,
/// `--no-overwrite`, refused together as virsh refuses them.
fn create_flags(build: bool, o: &BuildOpts) -> Result<u32, CmdError> {
    if o.overwrite && o.no_overwrite {
        return Err(CmdError::msg(
            "Options --overwrite and --no-overwrite are mutually exclusive",
        ));
    }
    Ok(if o.overwrite {
        create::WITH_BUILD_OVERWRITE
    } else if o.no_overwrite {
        create::WITH_BUILD_NO_OVERWRITE
    } else if build {
        create::WITH_BUILD
    } else {
        0
    })
}

/// A pool by UUID (when the argument is one) then by name, as virsh's
/// `virshCommandOptPool` finds it.
pub fn lookup(s: &mut Session, arg: &str) -> Result<NonnullStoragePool, CmdError> {
    lookup_as(s, arg, true, true)
}

fn lookup_as(
    s: &mut Session,
    arg: &str,
    by_uuid: bool,
    by_name: bool,
) -> Result<NonnullStoragePool, CmdError> {
    let mut last = None;
    if by_uuid && arg.len() == 36 {
        if let Ok(uuid) = arg.parse::<Uuid>() {
            match s.call::<procs::StoragePoolLookupByUuid>(&UuidArgs { uuid }) {
                Ok(r) => return Ok(r.pool),
                Err(e) => last = Some(e),
            }
        }
    }
    if by_name {
        match s.call::<procs::StoragePoolLookupByName>(&NameArgs { name: arg.into() }) {
            Ok(r) => return Ok(r.pool),
            Err(e) => last = Some(e),
        }
    }
    let err = CmdError::msg(format!("failed to get pool '{arg}'"));
    Err(match last {
        Some(e) => CmdError::from(e).context(format!("failed to get pool '{arg}'")),
        None => err,
    })
}

/// virsh's `%.2lf %s` sizes (`vshPrettyCapacity`).
pub fn pretty(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{:.2} B", bytes as f64);
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

fn state_name(state: u8) -> &'static str {
    match state {
        pool_state::INACTIVE => "inactive",
        pool_state::BUILDING => "building",
        pool_state::RUNNING => "running",
        pool_state::DEGRADED => "degraded",
        pool_state::INACCESSIBLE => "inaccessible",
        _ => "unknown",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn pool_info(s: &mut Session, out: &Out, arg: &str, bytes: bool) -> Result<(), CmdError> {
    let p = lookup(s, arg)?;
    out.field("Name:", &p.name);
    out.field("UUID:", p.uuid);
    let a = StoragePoolArgs { pool: p.clone() };
    let info = s.call::<procs::StoragePoolGetInfo>(&a)?;
    out.field("State:", state_name(info.state));
    let persistent = s.call::<procs::StoragePoolIsPersistent>(&a)?.persistent != 0;
    out.field("Persistent:", yes_no(persistent));
    let autostart = match s.call::<procs::StoragePoolGetAutostart>(&a) {
        Ok(r) => yes_no(r.autostart != 0),
        Err(_) => "no autostart",
    };
    out.field("Autostart:", autostart);
    if info.state == pool_state::RUNNING || info.state == pool_state::DEGRADED {
        for (label, v) in [
            ("Capacity:", info.capacity),
            ("Allocation:", info.allocation),
            ("Available:", info.available),
        ] {
            if bytes {
                out.field(label, v);
            } else {
                out.field(label, pretty(v));
            }
        }
    }
    Ok(())
}

/// The `VIR_CONNECT_LIST_STORAGE_POOLS_*` flags of pool-list's options.
fn list_flags(o: &PoolListOpts) -> Result<u32, CmdError> {
    let mut flags = if o.all {
        list::ACTIVE | list::INACTIVE
    } else if o.inactive {
        list::INACTIVE
    } else {
        list::ACTIVE
    };
    if o.persistent {
        flags |= list::PERSISTENT;
    }
    if o.transient {
        flags |= list::TRANSIENT;
    }
    if o.autostart {
        flags |= list::AUTOSTART;
    }
    if o.no_autostart {
        flags |= list::NO_AUTOSTART;
    }
    if let Some(types) = &o.kind {
        for t in types.split(',') {
            let i = list::TYPE_BITS
                .iter()
                .position(|x| *x == t)
                .ok_or_else(|| CmdError::msg(format!("Invalid pool type '{t}'")))?;
            flags |= list::DIR << i;
        }
    }
    Ok(flags)
}

fn pool_list(s: &mut Session, out: &Out, o: &PoolListOpts) -> Result<(), CmdError> {
    let flags = list_flags(o)?;
    let mut pools = s
        .call::<procs::ConnectListAllStoragePools>(&ConnectListAllArgs {
            need_results: 1,
            flags,
        })
        .map_err(|e| CmdError::from(e).context("Failed to list pools"))?
        .pools;
    pools.sort_by_key(|p| p.name.to_lowercase());
    if o.name || o.uuid {
        for p in &pools {
            // virsh pads names to 20 columns here.
            let line = match (o.uuid, o.name) {
                (true, true) => format!("{} {:<20}\n", p.uuid, p.name),
                (true, false) => format!("{}\n", p.uuid),
                _ => format!("{:<20}\n", p.name),
            };
            out.print(&line);
        }
        return Ok(());
    }
    let header: &[&str] = if o.details {
        &[
            "Name",
            "State",
            "Autostart",
            "Persistent",
            "Capacity",
            "Allocation",
            "Available",
        ]
    } else {
        &["Name", "State", "Autostart"]
    };
    let mut t = Table::new(header);
    for p in pools {
        let a = StoragePoolArgs { pool: p.clone() };
        let autostart = match s.call::<procs::StoragePoolGetAutostart>(&a) {
            Ok(r) => yes_no(r.autostart != 0),
            Err(_) => "no autostart",
        };
        let info = s.call::<procs::StoragePoolGetInfo>(&a)?;
        if o.details {
            let persistent = s.call::<procs::StoragePoolIsPersistent>(&a)?.persistent != 0;
            let running = info.state == pool_state::RUNNING || info.state == pool_state::DEGRADED;
            let size = |v: u64| if running { pretty(v) } else { "-".into() };
            t.row(&[
                p.name.clone(),
                state_name(info.state).into(),
                autostart.into(),
                yes_no(persistent).into(),
                size(info.capacity),
                size(info.allocation),
                size(info.available),
            ]);
        } else {
            let state = if info.state == pool_state::RUNNING {
                "active"
            } else {
                "inactive"
            };
            t.row(&[p.name.clone(), state.into(), autostart.into()]);
        }
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

/// The XML virsh builds for `pool-define-as` and `pool-create-as`
/// (`virshBuildPoolXML`), with the pool's name.
fn pool_xml(d: &PoolAs) -> Result<(String, String), CmdError> {
    let name = d.name.clone().unwrap_or_default();
    let kind = d.kind.clone().unwrap_or_default();
    let esc = |v: &str| {
        let mut s = String::new();
        rvirt_domain::xml::escape_into(&mut s, v);
        s
    };
    let mut x = format!(
        "<pool type='{}'>\n  <name>{}</name>\n",
        esc(&kind),
        esc(&name)
    );
    let has_source = d.source_host.is_some()
        || d.source_path.is_some()
        || d.source_dev.is_some()
        || d.source_name.is_some()
        || d.source_format.is_some();
    if has_source {
        x.push_str("  <source>\n");
        if let Some(h) = &d.source_host {
            x.push_str(&format!("    <host name='{}'/>\n", esc(h)));
        }
        if let Some(p) = &d.source_path {
            x.push_str(&format!("    <dir path='{}'/>\n", esc(p)));
        }
        if let Some(p) = &d.source_dev {
            x.push_str(&format!("    <device path='{}'/>\n", esc(p)));
        }
        if let Some(f) = &d.source_format {
            x.push_str(&format!("    <format type='{}'/>\n", esc(f)));
        }
        if let Some(n) = &d.source_name {
            x.push_str(&format!("    <name>{}</name>\n", esc(n)));
        }
        x.push_str("  </source>\n");
    }
    if let Some(t) = &d.target {
        x.push_str(&format!(
            "  <target>\n    <path>{}</path>\n  </target>\n",
            esc(t)
        ));
    }
    x.push_str("</pool>\n");
    Ok((name, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_virsh_prints_them() {
        assert_eq!(pretty(0), "0.00 B");
        assert_eq!(pretty(200704), "196.00 KiB");
        assert_eq!(pretty(10485760), "10.00 MiB");
        assert_eq!(pretty(270553174016), "251.97 GiB");
    }
}
