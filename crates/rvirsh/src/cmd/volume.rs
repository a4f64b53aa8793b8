//! The storage volume commands, with virsh's output (virsh-volume.c).

use std::io::{Read, Write};
use std::time::Duration;

use rvirt_remote::calls::{
    StoragePoolArgs, StoragePoolListAllVolumesArgs, StorageVolArgs, StorageVolCreateXmlArgs,
    StorageVolCreateXmlFromArgs, StorageVolFlagsArgs, StorageVolLookupByKeyArgs,
    StorageVolLookupByNameArgs, StorageVolLookupByPathArgs, StorageVolResizeArgs,
    StorageVolStreamArgs, StorageVolWipePatternArgs,
};
use rvirt_remote::consts::storage::{resize, vol_create, vol_type, GET_PHYSICAL, SPARSE_STREAM};
use rvirt_remote::types::{NonnullStoragePool, NonnullStorageVol};
use rvirt_remote::{procs, Async, MessageStatus};

use super::pool::{lookup as lookup_pool, pretty};
use crate::cli::{TransferOpts, VolArg, VolCommand, VolCreateAs};
use crate::cmd::read_file;
use crate::error::{strerror, CmdError};
use crate::out::Out;
use crate::session::Session;
use crate::table::Table;

/// Runs one volume command on an open session.
pub fn run(s: &mut Session, out: &Out, c: &VolCommand) -> Result<(), CmdError> {
    let n = c.name();
    match c {
        VolCommand::List { pool, details } => vol_list(s, out, pool.get(n)?, *details),
        VolCommand::Info {
            vol,
            bytes,
            physical,
        } => vol_info(s, out, vol, n, *bytes, *physical),
        VolCommand::Dumpxml { vol } => {
            let v = lookup(s, vol, n)?;
            let xml = s
                .call::<procs::StorageVolGetXmlDesc>(&StorageVolFlagsArgs { vol: v, flags: 0 })?
                .xml;
            out.print(&xml);
            Ok(())
        }
        VolCommand::Path { vol } => {
            let v = lookup(s, vol, n)?;
            let path = s
                .call::<procs::StorageVolGetPath>(&StorageVolArgs { vol: v })?
                .name;
            out.print(&format!("{path}\n"));
            Ok(())
        }
        VolCommand::Key { vol } => {
            let v = lookup(s, vol, n)?;
            out.print(&format!("{}\n", v.key));
            Ok(())
        }
        VolCommand::Name { vol } => {
            let arg = VolArg {
                vol: vol.clone(),
                ..Default::default()
            };
            let v = lookup_hinted(s, &arg, n, false)?;
            out.print(&format!("{}\n", v.name));
            Ok(())
        }
        VolCommand::Pool { vol, uuid } => {
            let arg = VolArg {
                vol: vol.clone(),
                ..Default::default()
            };
            let v = lookup_hinted(s, &arg, n, false)?;
            let p = s
                .call::<procs::StoragePoolLookupByVolume>(&StorageVolArgs { vol: v })
                .map_err(|e| CmdError::from(e).context("failed to get parent pool"))?
                .pool;
            if *uuid {
                out.print(&format!("{}\n", p.uuid));
            } else {
                out.print(&format!("{}\n", p.name));
            }
            Ok(())
        }
        VolCommand::CreateAs(c) => create_as(s, out, c),
        VolCommand::Create {
            pool,
            file,
            prealloc_metadata,
        } => {
            let p = lookup_pool(s, pool.get(n)?)?;
            let file = file.as_deref().unwrap_or_default();
            let xml = read_file(file)?;
            let flags = prealloc(*prealloc_metadata);
            let v = s
                .call::<procs::StorageVolCreateXml>(&StorageVolCreateXmlArgs {
                    pool: p,
                    xml,
                    flags,
                })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to create vol from {file}"))
                })?
                .vol;
            out.extra(&format!("Vol {} created from {file}\n", v.name));
            Ok(())
        }
        VolCommand::CreateFrom {
            pool,
            file,
            vol,
            inputpool,
            prealloc_metadata,
        } => {
            let p = lookup_pool(s, pool.as_deref().unwrap_or_default())?;
            let input = lookup(
                s,
                &VolArg {
                    vol: vol.clone(),
                    vol_opt: None,
                    pool: inputpool.clone(),
                },
                n,
            )?;
            let file = file.as_deref().unwrap_or_default();
            let xml = read_file(file)?;
            let v = s
                .call::<procs::StorageVolCreateXmlFrom>(&StorageVolCreateXmlFromArgs {
                    pool: p,
                    xml,
                    clonevol: input.clone(),
                    flags: prealloc(*prealloc_metadata),
                })
                .map_err(|e| {
                    CmdError::from(e).context(format!("Failed to create vol from {file}"))
                })?
                .vol;
            out.extra(&format!(
                "Vol {} created from input vol {}\n",
                v.name, input.name
            ));
            Ok(())
        }
        VolCommand::Clone {
            vol,
            newname,
            prealloc_metadata,
            print_xml,
        } => {
            let orig = lookup(s, vol, n)?;
            let newname = newname.as_deref().unwrap_or_default();
            let pool = s
                .call::<procs::StoragePoolLookupByVolume>(&StorageVolArgs { vol: orig.clone() })
                .map_err(|e| CmdError::from(e).context("failed to get parent pool"))?
                .pool;
            let xml = s
                .call::<procs::StorageVolGetXmlDesc>(&StorageVolFlagsArgs {
                    vol: orig.clone(),
                    flags: 0,
                })?
                .xml;
            let xml = clone_xml(&xml, newname)?;
            if *print_xml {
                out.print(&xml);
                return Ok(());
            }
            s.call::<procs::StorageVolCreateXmlFrom>(&StorageVolCreateXmlFromArgs {
                pool,
                xml,
                clonevol: orig.clone(),
                flags: prealloc(*prealloc_metadata),
            })
            .map_err(|e| {
                CmdError::from(e).context(format!("Failed to clone vol from {}", orig.name))
            })?;
            out.extra(&format!("Vol {newname} cloned from {}\n", orig.name));
            Ok(())
        }
        VolCommand::Delete {
            vol,
            delete_snapshots,
        } => {
            let v = lookup(s, vol, n)?;
            let flags = if *delete_snapshots { 2 } else { 0 };
            s.call::<procs::StorageVolDelete>(&StorageVolFlagsArgs {
                vol: v.clone(),
                flags,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to delete vol {}", v.name)))?;
            out.extra(&format!("Vol {} deleted\n", v.name));
            Ok(())
        }
        VolCommand::Resize {
            vol,
            capacity,
            allocate,
            delta,
            shrink,
        } => {
            let v = lookup(s, vol, n)?;
            let text = capacity.as_deref().unwrap_or_default();
            let (text, neg) = match text.strip_prefix('-') {
                Some(t) => (t, true),
                None => (text, false),
            };
            let bytes = scaled(text)?;
            let mut flags = 0;
            if *allocate {
                flags |= resize::ALLOCATE;
            }
            if *delta || neg {
                flags |= resize::DELTA;
            }
            if *shrink || neg {
                flags |= resize::SHRINK;
            }
            let shown = capacity.as_deref().unwrap_or_default();
            s.call::<procs::StorageVolResize>(&StorageVolResizeArgs {
                vol: v.clone(),
                capacity: bytes,
                flags,
            })
            .map_err(|e| {
                CmdError::from(e).context(format!(
                    "Failed to change size of volume '{}' to {shown}",
                    v.name
                ))
            })?;
            let how = if *delta || neg { "by" } else { "to" };
            out.extra(&format!(
                "Size of volume '{}' successfully changed {how} {shown}\n",
                v.name
            ));
            Ok(())
        }
        VolCommand::Wipe { vol, algorithm } => {
            let v = lookup(s, vol, n)?;
            let alg = match algorithm.as_deref() {
                None => 0,
                Some(a) => WIPE_ALGORITHMS
                    .iter()
                    .position(|x| *x == a)
                    .ok_or_else(|| CmdError::msg(format!("Unsupported algorithm '{a}'")))?
                    as u32,
            };
            s.call::<procs::StorageVolWipePattern>(&StorageVolWipePatternArgs {
                vol: v.clone(),
                algorithm: alg,
                flags: 0,
            })
            .map_err(|e| CmdError::from(e).context(format!("Failed to wipe vol {}", v.name)))?;
            out.extra(&format!("Vol {} wiped\n", v.name));
            Ok(())
        }
        VolCommand::Upload(t) => upload(s, t, n),
        VolCommand::Download(t) => download(s, t, n),
    }
}

/// `virStorageVolWipeAlgorithm` names, in number order.
const WIPE_ALGORITHMS: &[&str] = &[
    "zero",
    "nnsa",
    "dod",
    "bsi",
    "gutmann",
    "schneier",
    "pfitzner7",
    "pfitzner33",
    "random",
    "trim",
];

fn prealloc(on: bool) -> u32 {
    if on {
        vol_create::PREALLOC_METADATA
    } else {
        0
    }
}

/// A scaled integer as virsh reads sizes (`10M`, `1G`, `512`: bytes by
/// default), or virsh's "Malformed size".
pub fn scaled(text: &str) -> Result<u64, CmdError> {
    let malformed = || CmdError::msg(format!("Malformed size {text}"));
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits);
    let n: u64 = num.parse().map_err(|_| malformed())?;
    let scale = if unit.is_empty() {
        1
    } else {
        rvirt_domain::units::unit_scale(unit).ok_or_else(malformed)?
    };
    n.checked_mul(scale).ok_or_else(malformed)
}

/// A volume as virsh's `virshCommandOptVolBy` finds it: with `--pool`, by
/// name in that (running) pool; then by key; then by path.
pub fn lookup(s: &mut Session, a: &VolArg, cmd: &str) -> Result<NonnullStorageVol, CmdError> {
    lookup_hinted(s, a, cmd, true)
}

/// [`lookup`]; `hint`: the command has a `--pool` option, which virsh
/// suggests when the volume is not found without it.
fn lookup_hinted(
    s: &mut Session,
    a: &VolArg,
    cmd: &str,
    hint: bool,
) -> Result<NonnullStorageVol, CmdError> {
    let arg = a.get(cmd)?.to_string();
    let pool = match &a.pool {
        Some(p) => Some(lookup_pool(s, p)?),
        None => None,
    };
    if let Some(p) = &pool {
        let active = s
            .call::<procs::StoragePoolIsActive>(&StoragePoolArgs { pool: p.clone() })?
            .active;
        if active == 0 {
            return Err(CmdError::msg(format!("pool '{}' is not active", p.name)));
        }
    }
    let mut found = None;
    let mut last = None;
    if let Some(p) = &pool {
        match s.call::<procs::StorageVolLookupByName>(&StorageVolLookupByNameArgs {
            pool: p.clone(),
            name: arg.clone(),
        }) {
            Ok(r) => found = Some(r.vol),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() {
        match s
            .call::<procs::StorageVolLookupByKey>(&StorageVolLookupByKeyArgs { key: arg.clone() })
        {
            Ok(r) => found = Some(r.vol),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() {
        match s.call::<procs::StorageVolLookupByPath>(&StorageVolLookupByPathArgs {
            path: arg.clone(),
        }) {
            Ok(r) => found = Some(r.vol),
            Err(e) => last = Some(e),
        }
    }
    let Some(vol) = found else {
        let ctx = if pool.is_some() || !hint {
            format!("failed to get vol '{arg}'")
        } else {
            format!("failed to get vol '{arg}', specifying --pool might help")
        };
        return Err(match last {
            Some(e) => CmdError::from(e).context(ctx),
            None => CmdError::msg(ctx),
        });
    };
    if let Some(p) = &pool {
        let owner = s
            .call::<procs::StoragePoolLookupByVolume>(&StorageVolArgs { vol: vol.clone() })
            .map_err(|e| CmdError::from(e).context("failed to get parent pool"))?
            .pool;
        if owner.name != p.name {
            return Err(CmdError::msg(format!(
                "Requested volume '{arg}' is not in pool '{}'",
                p.name
            )));
        }
    }
    Ok(vol)
}

fn type_name(t: u8) -> &'static str {
    match t {
        vol_type::FILE => "file",
        vol_type::BLOCK => "block",
        vol_type::DIR => "dir",
        vol_type::NETWORK => "network",
        vol_type::NETDIR => "netdir",
        vol_type::PLOOP => "ploop",
        _ => "unknown",
    }
}

fn vol_info(
    s: &mut Session,
    out: &Out,
    a: &VolArg,
    cmd: &str,
    bytes: bool,
    physical: bool,
) -> Result<(), CmdError> {
    let v = lookup(s, a, cmd)?;
    out.field("Name:", &v.name);
    let info = if physical {
        s.call::<procs::StorageVolGetInfoFlags>(&StorageVolFlagsArgs {
            vol: v,
            flags: GET_PHYSICAL,
        })?
    } else {
        s.call::<procs::StorageVolGetInfo>(&StorageVolArgs { vol: v })?
    };
    out.field("Type:", type_name(info.type_));
    let second = if physical { "Physical:" } else { "Allocation:" };
    for (label, n) in [("Capacity:", info.capacity), (second, info.allocation)] {
        if bytes {
            out.field(label, format!("{n} bytes"));
        } else {
            out.field(label, pretty(n));
        }
    }
    Ok(())
}

fn vol_list(s: &mut Session, out: &Out, arg: &str, details: bool) -> Result<(), CmdError> {
    let p: NonnullStoragePool = lookup_pool(s, arg)?;
    let mut vols = s
        .call::<procs::StoragePoolListAllVolumes>(&StoragePoolListAllVolumesArgs {
            pool: p,
            need_results: 1,
            flags: 0,
        })
        .map_err(|e| CmdError::from(e).context("Failed to list volumes"))?
        .vols;
    vols.sort_by_key(|p| p.name.to_lowercase());
    let header: &[&str] = if details {
        &["Name", "Path", "Type", "Capacity", "Allocation"]
    } else {
        &["Name", "Path"]
    };
    let mut t = Table::new(header);
    for v in vols {
        let path = s
            .call::<procs::StorageVolGetPath>(&StorageVolArgs { vol: v.clone() })?
            .name;
        if details {
            let i = s.call::<procs::StorageVolGetInfo>(&StorageVolArgs { vol: v.clone() })?;
            t.row(&[
                v.name.clone(),
                path,
                type_name(i.type_).into(),
                pretty(i.capacity),
                pretty(i.allocation),
            ]);
        } else {
            t.row(&[v.name.clone(), path]);
        }
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

/// The volume XML virsh builds for `vol-create-as`.
fn create_as(s: &mut Session, out: &Out, c: &VolCreateAs) -> Result<(), CmdError> {
    let pool = lookup_pool(s, c.pool.as_deref().unwrap_or_default())?;
    let name = c.name.clone().unwrap_or_default();
    let capacity = scaled(c.capacity.as_deref().unwrap_or_default())?;
    let esc = |v: &str| {
        let mut s = String::new();
        rvirt_domain::xml::escape_into(&mut s, v);
        s
    };
    let mut xml = format!(
        "<volume>\n  <name>{}</name>\n  <capacity>{capacity}</capacity>\n",
        esc(&name)
    );
    if let Some(a) = &c.allocation {
        xml.push_str(&format!("  <allocation>{}</allocation>\n", scaled(a)?));
    }
    if let Some(f) = &c.format {
        xml.push_str(&format!(
            "  <target>\n    <format type='{}'/>\n  </target>\n",
            esc(f)
        ));
    }
    if let Some(b) = &c.backing_vol {
        // By name in the same pool, then by key, then by path, as virsh.
        let found = s
            .call::<procs::StorageVolLookupByName>(&StorageVolLookupByNameArgs {
                pool: pool.clone(),
                name: b.clone(),
            })
            .or_else(|_| {
                s.call::<procs::StorageVolLookupByKey>(&StorageVolLookupByKeyArgs {
                    key: b.clone(),
                })
            })
            .or_else(|_| {
                s.call::<procs::StorageVolLookupByPath>(&StorageVolLookupByPathArgs {
                    path: b.clone(),
                })
            })
            .map_err(|_| CmdError::msg(format!("failed to get vol '{b}'")))?
            .vol;
        let path = s
            .call::<procs::StorageVolGetPath>(&StorageVolArgs { vol: found })
            .map_err(|e| CmdError::from(e).context(format!("failed to get vol '{b}'")))?
            .name;
        xml.push_str(&format!(
            "  <backingStore>\n    <path>{}</path>\n",
            esc(&path)
        ));
        if let Some(f) = &c.backing_vol_format {
            xml.push_str(&format!("    <format type='{}'/>\n", esc(f)));
        }
        xml.push_str("  </backingStore>\n");
    }
    xml.push_str("</volume>\n");
    if c.print_xml {
        out.print(&xml);
        return Ok(());
    }
    let v = s
        .call::<procs::StorageVolCreateXml>(&StorageVolCreateXmlArgs {
            pool,
            xml,
            flags: prealloc(c.prealloc_metadata),
        })
        .map_err(|e| CmdError::from(e).context(format!("Failed to create vol {name}")))?
        .vol;
    out.extra(&format!("Vol {} created\n", v.name));
    Ok(())
}

/// The clone's XML: the original's with the new name and no key or path
/// (`virshMakeCloneXML`).
fn clone_xml(xml: &str, newname: &str) -> Result<String, CmdError> {
    let mut root = rvirt_domain::xml::parse(xml)
        .map_err(|e| CmdError::msg(format!("Failed to parse the volume XML: {e}")))?;
    let mut name = root
        .take_child("name")
        .unwrap_or_else(|| rvirt_domain::xml::Element::new("name"));
    name.take_text();
    name.push_text(newname);
    root.insert_before("key", name);
    root.take_child("key");
    if let Some(t) = root.children.iter_mut().find_map(|n| match n {
        rvirt_domain::xml::Node::Element(e) if e.name == "target" => Some(e),
        _ => None,
    }) {
        t.take_child("path");
    }
    let mut out = String::new();
    rvirt_domain::xml::write(&mut out, &root, 0);
    Ok(out)
}

fn transfer_args(
    s: &mut Session,
    t: &TransferOpts,
    cmd: &str,
) -> Result<StorageVolStreamArgs, CmdError> {
    let vol = lookup(s, &t.vol_arg(), cmd)?;
    Ok(StorageVolStreamArgs {
        vol,
        offset: t.offset,
        length: t.length,
        flags: if t.sparse { SPARSE_STREAM } else { 0 },
    })
}

/// `vol-upload`: the file's bytes as STREAM data, then the finish, then
/// the daemon's confirmation.
fn upload(s: &mut Session, t: &TransferOpts, cmd: &str) -> Result<(), CmdError> {
    let path = t.file(cmd)?;
    let mut file = std::fs::File::open(path)
        .map_err(|e| CmdError::msg(format!("cannot read {path}: {}", strerror(&e))))?;
    let a = transfer_args(s, t, cmd)?;
    let name = a.vol.name.clone();
    let fail = |e: CmdError| e.context(format!("cannot upload to volume {name}"));
    let (_, stream) = s
        .client
        .open_stream::<procs::StorageVolUpload>(&a)
        .map_err(|e| fail(CmdError::from(e)))?;
    let mut buf = vec![0u8; rvirt_remote::client::STREAM_CHUNK_MAX];
    loop {
        // An error the daemon sent ends the upload at once.
        if let Some(m) = s
            .client
            .next_stream(stream.serial(), Some(Duration::ZERO))
            .map_err(|e| fail(e.into()))?
        {
            return Err(fail(stream_failure(&m)));
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(fail(CmdError::msg(format!(
                    "cannot read {path}: {}",
                    strerror(&e)
                ))))
            }
        };
        stream.send(&buf[..n]).map_err(|e| fail(e.into()))?;
    }
    stream.finish().map_err(|e| fail(e.into()))?;
    match s
        .client
        .next_stream(stream.serial(), None)
        .map_err(|e| fail(e.into()))?
    {
        Some(Async::Stream {
            status: MessageStatus::Ok,
            ..
        }) => Ok(()),
        Some(m) => Err(fail(stream_failure(&m))),
        None => Err(fail(CmdError::msg("the stream ended without confirmation"))),
    }
}

/// What a stream message other than the expected one means.
fn stream_failure(m: &Async) -> CmdError {
    match m.stream_error() {
        Some(Ok(e)) => CmdError::msg(e.to_string()),
        Some(Err(e)) => CmdError::msg(format!("undecodable stream error: {e}")),
        None => CmdError::msg("unexpected stream message"),
    }
}

/// `vol-download`: STREAM data into the file until the empty CONTINUE,
/// then the finish and the daemon's confirmation.
fn download(s: &mut Session, t: &TransferOpts, cmd: &str) -> Result<(), CmdError> {
    let path = t.file(cmd)?;
    let a = transfer_args(s, t, cmd)?;
    let name = a.vol.name.clone();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| CmdError::msg(format!("cannot create {path}: {}", strerror(&e))))?;
    let fail = |e: CmdError| e.context(format!("cannot download from volume {name}"));
    let (_, stream) = s
        .client
        .open_stream::<procs::StorageVolDownload>(&a)
        .map_err(|e| fail(CmdError::from(e)))?;
    loop {
        match s
            .client
            .next_stream(stream.serial(), None)
            .map_err(|e| fail(e.into()))?
        {
            Some(Async::Stream {
                status: MessageStatus::Continue,
                data,
                ..
            }) => {
                if data.is_empty() {
                    break;
                }
                file.write_all(&data).map_err(|e| {
                    fail(CmdError::msg(format!(
                        "cannot write {path}: {}",
                        strerror(&e)
                    )))
                })?;
            }
            Some(m) => return Err(fail(stream_failure(&m))),
            None => return Err(fail(CmdError::msg("the stream ended early"))),
        }
    }
    stream.finish().map_err(|e| fail(e.into()))?;
    match s
        .client
        .next_stream(stream.serial(), None)
        .map_err(|e| fail(e.into()))?
    {
        Some(Async::Stream {
            status: MessageStatus::Ok,
            ..
        }) => Ok(()),
        Some(m) => Err(fail(stream_failure(&m))),
        None => Err(fail(CmdError::msg("the stream ended without confirmation"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_as_virsh_reads_them() {
        assert_eq!(scaled("10").unwrap(), 10);
        assert_eq!(scaled("10M").unwrap(), 10 << 20);
        assert_eq!(scaled("1G").unwrap(), 1 << 30);
        assert_eq!(scaled("1GB").unwrap(), 1_000_000_000);
        assert_eq!(
            scaled("9999999999999999999999").unwrap_err().to_string(),
            "Malformed size 9999999999999999999999"
        );
        assert!(scaled("12parsec").is_err());
    }

    #[test]
    fn a_clone_has_the_new_name_and_no_key_or_path() {
        let x = clone_xml(
            "<volume type='file'><name>a</name><key>/p/a</key><capacity unit='bytes'>1</capacity><target><path>/p/a</path><format type='raw'/></target></volume>",
            "b",
        )
        .unwrap();
        assert!(x.contains("<name>b</name>"), "{x}");
        assert!(!x.contains("/p/a"), "{x}");
        assert!(x.contains("<format type='raw'/>"), "{x}");
    }
}
