//! The graphical console: `<graphics type='vnc'>` as libvirt 9.0 writes it
//! for QEMU (`-audiodev` then `-vnc`), and `<video>` as the display
//! device the VNC server shows (`-device VGA` or `bochs-display`).
//! Other graphics types and video models are refused with one line each:
//! rvirt-vmm serves VNC only and emulates no qxl, virtio-gpu or cirrus.

// `write!` into a String cannot fail, so its result is ignored below.
use std::fmt::Write as _;

use super::{qv, Builder};
use crate::model::{Domain, OtherDevice};

/// The first display number's port, as QEMU counts them.
pub const VNC_PORT_MIN: u16 = 5900;

/// Where a VNC server listens, read from a `<graphics type='vnc'>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VncListen {
    /// TCP on an address (`<listen type='address'>`, or the `listen`
    /// attribute; 127.0.0.1, qemu.conf's `vnc_listen` default, if none).
    Address(String),
    /// A unix socket (`<listen type='socket' socket=…/>`).
    Socket(Option<String>),
    /// No listener: clients come through OPEN_GRAPHICS_FD only.
    None,
    /// `<listen type='network'>`: the network's address (not supported).
    Network(String),
}

/// The listener of a `<graphics>` element, as libvirt reads it: the first
/// `<listen>` child, else the `listen` attribute.
pub fn vnc_listen(g: &crate::xml::Element) -> VncListen {
    match g.child("listen") {
        Some(l) => match l.attr("type").unwrap_or("address") {
            "socket" => VncListen::Socket(l.attr("socket").map(str::to_string)),
            "none" => VncListen::None,
            "network" => VncListen::Network(l.attr("network").unwrap_or_default().to_string()),
            _ => VncListen::Address(
                l.attr("address")
                    .or(g.attr("listen"))
                    .unwrap_or("127.0.0.1")
                    .to_string(),
            ),
        },
        None => VncListen::Address(g.attr("listen").unwrap_or("127.0.0.1").to_string()),
    }
}

/// The TCP port a `<graphics type='vnc'>` names (`port` ≥ 5900), or
/// `None` for `autoport='yes'`/`port='-1'` (the daemon picks one).
pub fn vnc_port(g: &crate::xml::Element) -> Option<u16> {
    if g.attr("autoport") == Some("yes") {
        return None;
    }
    g.attr("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|&p| p >= VNC_PORT_MIN)
}

/// Video models rvirt-vmm emulates: libvirt's model, QEMU's driver.
const VIDEO: &[(&str, &str)] = &[("vga", "VGA"), ("bochs", "bochs-display")];

/// libvirt's default `vram` (KiB) for VGA and bochs.
const DEFAULT_VRAM_KIB: u64 = 16384;

pub(super) fn all(dom: &Domain, b: &mut Builder) {
    let graphics: Vec<&OtherDevice> = dom
        .devices
        .others
        .iter()
        .filter(|o| o.kind() == "graphics")
        .collect();
    let mut vnc = None;
    for g in &graphics {
        match g.dev_type().unwrap_or_default() {
            "vnc" if vnc.is_none() => vnc = Some(*g),
            "vnc" => b.refuse(g.line(), "graphics", "a second VNC server is not supported"),
            other => b.refuse(
                g.line(),
                "graphics",
                format!("type '{other}' is not supported: rvirt serves VNC only"),
            ),
        }
    }
    if let Some(g) = vnc {
        vnc_args(dom, g, b);
    }
    let videos = dom.devices.others.iter().filter(|o| o.kind() == "video");
    for (n, v) in videos.enumerate() {
        video(dom, v, n, b);
    }
}

fn vnc_args(dom: &Domain, g: &OtherDevice, b: &mut Builder) {
    let e = &g.element;
    for (attr, what) in [("websocket", "a websocket"), ("keymap", "a keymap")] {
        if e.attr(attr).is_some() {
            b.refuse(g.line(), "graphics", format!("{what} is not supported"));
        }
    }
    let mut vnc = match vnc_listen(e) {
        VncListen::Address(a) => {
            let port = e
                .attr("port")
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p >= VNC_PORT_MIN)
                .unwrap_or(VNC_PORT_MIN);
            let host = if a.contains(':') { format!("[{a}]") } else { a };
            format!("{host}:{}", port - VNC_PORT_MIN)
        }
        VncListen::Socket(path) => {
            let path = path.unwrap_or_else(|| {
                b.paths
                    .monitor_socket
                    .with_file_name("vnc.sock")
                    .to_string_lossy()
                    .into_owned()
            });
            format!("unix:{}", qv(&path))
        }
        VncListen::None => "none".to_string(),
        VncListen::Network(n) => {
            b.refuse(
                g.line(),
                "graphics",
                format!("listen type 'network' ('{n}') is not supported: give an address"),
            );
            return;
        }
    };
    if e.attr("passwd").is_some() {
        vnc.push_str(",password=on");
    }
    match e.attr("sharePolicy") {
        None => {}
        Some(p @ ("allow-exclusive" | "force-shared" | "ignore")) => {
            let _ = write!(vnc, ",share={p}");
        }
        Some(p) => b.refuse(
            g.line(),
            "graphics",
            format!("sharePolicy '{p}' is not one of allow-exclusive, force-shared, ignore"),
        ),
    }
    // libvirt gives the VNC server an audio back-end: the domain's first
    // `<audio>` (libvirt's define adds `<audio id='1' type='none'/>`).
    let audio = dom
        .devices
        .others
        .iter()
        .find(|o| o.kind() == "audio")
        .and_then(|a| a.element.attr("id"))
        .unwrap_or("1");
    b.opt(
        "-audiodev",
        format!("{{\"id\":\"audio{audio}\",\"driver\":\"none\"}}"),
    );
    let _ = write!(vnc, ",audiodev=audio{audio}");
    b.opt("-vnc", vnc);
}

fn video(dom: &Domain, v: &OtherDevice, n: usize, b: &mut Builder) {
    let model = v.model().unwrap_or("default");
    if model == "none" {
        return;
    }
    let Some((_, driver)) = VIDEO.iter().find(|(m, _)| *m == model) else {
        b.refuse(
            v.line(),
            "video",
            format!("model '{model}' is not emulated (vga, bochs and none are)"),
        );
        return;
    };
    if n > 0 {
        b.refuse(v.line(), "video", "a second video device is not supported");
        return;
    }
    let m = v.element.child("model");
    let heads = m.and_then(|m| m.attr("heads")).unwrap_or("1");
    if heads != "1" {
        b.refuse(
            v.line(),
            "video",
            format!("{heads} heads: only one is supported"),
        );
        return;
    }
    // An unsigned int of KiB, as libvirt reads it (so the bytes fit).
    let vram = m
        .and_then(|m| m.attr("vram"))
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(DEFAULT_VRAM_KIB, u64::from);
    // libvirt's JSON, in its key order: VGA's memory in MiB, bochs's in
    // bytes, both from `vram`.
    let mut dev = format!("{{\"driver\":\"{driver}\",\"id\":\"video{n}\"");
    match model {
        "vga" => {
            let _ = write!(dev, ",\"vgamem_mb\":{}", vram / 1024);
        }
        _ => {
            let _ = write!(dev, ",\"vgamem\":{}", vram * 1024);
        }
    }
    // On PCI where fill-in put it (slot 2 on pc, as libvirt).
    if let Some(place) = super::pci::place(dom, v.element.child("address"), v.line(), "video", b) {
        let json = serde_json::to_string(&place).unwrap_or_default();
        let fields = json.trim_start_matches('{').trim_end_matches('}');
        let _ = write!(dev, ",{fields}");
    }
    dev.push('}');
    b.opt("-device", dev);
}
