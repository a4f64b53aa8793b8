//! The graphical console's commands, as virsh 9.0 runs them client-side
//! from the live XML (`vncdisplay`, `domdisplay`) or over a stream
//! (`screenshot`).

use std::io::Write;

use rvirt_domain::xml::Element;
use rvirt_remote::calls::{DomainArgs, DomainScreenshotArgs};
use rvirt_remote::consts::xml_flags;
use rvirt_remote::{procs, Async, MessageStatus};

use crate::error::{strerror, CmdError};
use crate::out::Out;
use crate::session::{By, Session};

/// The first `<graphics type=…>` of a domain's XML.
fn graphics<'a>(root: &'a Element, type_: &str) -> Option<&'a Element> {
    root.elements()
        .filter(|c| c.name == "devices")
        .flat_map(Element::elements)
        .find(|g| g.name == "graphics" && g.attr("type") == Some(type_))
}

/// virsh's listen address: the `listen` attribute, else the first
/// `<listen address=…>` (an empty value counts as none, as XPath's).
fn listen_address(g: &Element) -> Option<&str> {
    g.attr("listen").filter(|a| !a.is_empty()).or_else(|| {
        g.elements()
            .filter(|l| l.name == "listen")
            .find_map(|l| l.attr("address").filter(|a| !a.is_empty()))
    })
}

fn live_xml(
    s: &mut Session,
    dom: &rvirt_remote::NonnullDomain,
    flags: u32,
) -> Result<Element, CmdError> {
    let xml = s.xml(dom, flags)?;
    crate::devices::parse(&xml)
        .map_err(|e| CmdError::msg(format!("Failed to parse domain XML: {e}")))
}

fn check_active(s: &mut Session, dom: &rvirt_remote::NonnullDomain) -> Result<(), CmdError> {
    let active = s
        .call::<procs::DomainIsActive>(&DomainArgs { dom: dom.clone() })
        .map_err(|_| CmdError::msg("Unable to get domain status"))?;
    if active.active == 0 {
        return Err(CmdError::msg("Domain is not running"));
    }
    Ok(())
}

/// `vncdisplay`: `HOST:DISPLAY`, or `:DISPLAY` on every address.
pub fn vncdisplay(s: &mut Session, out: &Out, arg: &str) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    check_active(s, &dom)?;
    let root = live_xml(s, &dom, 0)?;
    let g = graphics(&root, "vnc");
    let port = g
        .and_then(|g| g.attr("port"))
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| CmdError::msg("Failed to get VNC port. Is this domain using VNC?"))?;
    match g.and_then(listen_address) {
        None | Some("0.0.0.0") => out.print(&format!(":{}\n", port - 5900)),
        Some(a) => out.print(&format!("{a}:{}\n", port - 5900)),
    }
    Ok(())
}

/// `domdisplay`: the display's URI (`vnc://HOST:DISPLAY`, with
/// `:PASSWORD@` when asked; `localhost` for a wildcard address).
pub fn domdisplay(
    s: &mut Session,
    out: &Out,
    arg: &str,
    include_password: bool,
    type_: Option<&str>,
    all: bool,
) -> Result<(), CmdError> {
    if all && type_.is_some() {
        return Err(CmdError::msg(
            "Options --all and --type are mutually exclusive",
        ));
    }
    let dom = s.lookup(arg, By::ANY)?;
    check_active(s, &dom)?;
    let flags = if include_password {
        xml_flags::SECURE
    } else {
        0
    };
    let root = live_xml(s, &dom, flags)?;
    let mut found = false;
    // rvirt serves VNC only: the other schemes are never in a live XML
    // rvirtd writes (spice is refused at start).
    for scheme in ["vnc"] {
        if type_.is_some_and(|t| t != scheme) {
            continue;
        }
        let Some(g) = graphics(&root, scheme) else {
            continue;
        };
        let socket = g
            .elements()
            .filter(|l| l.name == "listen" && l.attr("type") == Some("socket"))
            .find_map(|l| l.attr("socket"));
        let uri = match socket {
            Some(path) => format!("{scheme}+unix://{path}"),
            None => {
                let Some(port) = g.attr("port").and_then(|p| p.parse::<i32>().ok()) else {
                    continue;
                };
                if port <= 0 {
                    continue;
                }
                let host = match listen_address(g) {
                    None | Some("0.0.0.0" | "::") => "localhost".to_string(),
                    Some(a) if a.contains(':') => format!("[{a}]"),
                    Some(a) => a.to_string(),
                };
                let pass = match g.attr("passwd") {
                    Some(p) if include_password => format!(":{p}@"),
                    _ => String::new(),
                };
                format!("{scheme}://{pass}{host}:{}", port - 5900)
            }
        };
        // virsh ends the URI with the blank line every command ends with.
        if found {
            out.print("\n");
        }
        out.print(&uri);
        found = true;
        if !all {
            break;
        }
    }
    if !found {
        return Err(CmdError::msg(match type_ {
            Some(t) => format!("No graphical display with type '{t}' found"),
            None => "No graphical display found".to_string(),
        }));
    }
    Ok(())
}

/// The extension virsh gives a picture of `mime`.
fn extension(mime: &str) -> &'static str {
    match mime {
        "image/x-portable-pixmap" => ".ppm",
        "image/png" => ".png",
        _ => "",
    }
}

/// `screenshot`: the picture streamed into FILE (or
/// `DOMAIN-YYYY-MM-DD-HH:MM:SS.EXT`), created or truncated.
pub fn screenshot(
    s: &mut Session,
    out: &Out,
    arg: &str,
    file: Option<&str>,
    screen: Option<&str>,
) -> Result<(), CmdError> {
    let screen = match screen {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| {
            CmdError::msg(format!(
                "Numeric value '{v}' for <screen> option is malformed or out of range"
            ))
        })?,
    };
    let dom = s.lookup(arg, By::ANY)?;
    let name = dom.name.clone();
    let a = DomainScreenshotArgs {
        dom: dom.clone(),
        screen,
        flags: 0,
    };
    let (ret, stream) = s
        .client
        .open_stream::<procs::DomainScreenshot>(&a)
        .map_err(|e| CmdError::from(e).context(format!("could not take a screenshot of {name}")))?;
    let mime = ret.mime.unwrap_or_default();
    let path = match file {
        Some(f) => f.to_string(),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let stamp = crate::cmd::network::local_time(now).replace(' ', "-");
            format!("{name}-{stamp}{}", extension(&mime))
        }
    };
    let (mut f, created) = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(|_| CmdError::msg(format!("cannot create file {path}")))?;
            (f, false)
        }
        Err(_) => return Err(CmdError::msg(format!("cannot create file {path}"))),
    };
    let received = (|| -> Result<(), CmdError> {
        let fail = || CmdError::msg(format!("could not receive data from domain '{name}'"));
        loop {
            match s.client.next_stream(stream.serial(), None)? {
                Some(Async::Stream {
                    status: MessageStatus::Continue,
                    data,
                    ..
                }) => {
                    if data.is_empty() {
                        break;
                    }
                    f.write_all(&data).map_err(|e| {
                        fail().context(format!("cannot write {path}: {}", strerror(&e)))
                    })?;
                }
                _ => return Err(fail()),
            }
        }
        stream
            .finish()
            .map_err(|_| CmdError::msg(format!("cannot close stream on domain '{name}'")))?;
        match s.client.next_stream(stream.serial(), None)? {
            Some(Async::Stream {
                status: MessageStatus::Ok,
                ..
            }) => Ok(()),
            _ => Err(CmdError::msg(format!(
                "cannot close stream on domain '{name}'"
            ))),
        }
    })();
    if let Err(e) = received {
        if created {
            let _ = std::fs::remove_file(&path);
        }
        return Err(e);
    }
    // virsh's sentence has no newline of its own: the blank line every
    // command ends with ends it.
    out.extra(&format!("Screenshot saved to {path}, with type of {mime}"));
    Ok(())
}
