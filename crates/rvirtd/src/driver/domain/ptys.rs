//! Puts the ptys a VMM opened for its serial and parallel ports into the
//! live definition (`<source path='/dev/pts/N'/>`), as libvirt shows them
//! in `virsh dumpxml` of a running domain. (libvirt writes `tty=` only on
//! the first `<console>`, which the model's formatter does.)

use rvirt_domain::model::Chardev;
use rvirt_domain::xml::Element;
use rvirt_domain::Domain;
use rvirt_qmp::QmpClient;

/// `charserialN` label -> pty path, from QMP `query-chardev`.
fn pty_paths(qmp: &QmpClient) -> Vec<(String, String)> {
    let Ok(list) = qmp.query_chardev() else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|c| {
            let path = c.filename.strip_prefix("pty:")?.to_string();
            Some((c.label, path))
        })
        .collect()
}

fn set_source(c: &mut Chardev, path: &str) {
    if c.dev_type != "pty" {
        return;
    }
    let mut src = c.source.take().unwrap_or_else(|| Element::new("source"));
    src.set_attr("path", path);
    c.source = Some(src);
}

/// Child order of a `<parallel>` as libvirt writes it.
fn parallel_rank(name: &str) -> usize {
    ["source", "log", "protocol", "target", "alias", "address"]
        .iter()
        .position(|n| *n == name)
        .unwrap_or(6)
}

/// `<parallel type='pty'>` number `i` gets its pty (`charparallelN`, the
/// derivation's chardev ids, in the order the ports are defined).
fn annotate_parallels(live: &mut Domain, paths: &[(String, String)]) {
    let ports = live
        .devices
        .others
        .iter_mut()
        .filter(|o| o.kind() == "parallel");
    for (i, o) in ports.enumerate() {
        let label = format!("charparallel{i}");
        let Some((_, path)) = paths.iter().find(|(l, _)| *l == label) else {
            continue;
        };
        if o.element.attr("type") != Some("pty") {
            continue;
        }
        let mut src = o
            .element
            .take_child("source")
            .unwrap_or_else(|| Element::new("source"));
        src.set_attr("path", path.as_str());
        o.element.push(src);
        o.element.sort_children(parallel_rank);
    }
}

/// Fills in the pty paths of `live`'s pty serials (and of the consoles
/// that are those serials) and parallel ports.
pub fn annotate(live: &mut Domain, qmp: &QmpClient) {
    let paths = pty_paths(qmp);
    if paths.is_empty() {
        return;
    }
    annotate_parallels(live, &paths);
    let find = |i: usize| {
        let label = format!("charserial{i}");
        paths
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, p)| p.clone())
    };
    let devs = &mut live.devices;
    let serial_count = devs.serials.len();
    for (i, c) in devs.serials.iter_mut().enumerate() {
        if let Some(p) = find(i) {
            set_source(c, &p);
        }
    }
    // A console is serial N (its target port), or serial 0 itself when
    // there is no <serial>.
    for c in devs.consoles.iter_mut() {
        let port = c
            .target
            .as_ref()
            .and_then(|t| t.attr("port"))
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(0);
        if serial_count == 0 || port < serial_count {
            if let Some(p) = find(if serial_count == 0 { 0 } else { port }) {
                set_source(c, &p);
            }
        }
    }
}
