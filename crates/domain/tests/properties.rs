//! Property tests: random valid definitions round-trip; random bytes and
//! random mutations of real fixtures never panic.

mod common;

use proptest::prelude::*;
use rvirt_domain::{derive_argv, DeriveError, Domain, RuntimePaths};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

#[derive(Debug, Clone)]
struct DiskSpec {
    cache: Option<&'static str>,
    io: Option<&'static str>,
    readonly: bool,
    path: String,
}

fn disk_spec() -> impl Strategy<Value = DiskSpec> {
    (
        prop::option::of(prop::sample::select(vec![
            "none",
            "writeback",
            "writethrough",
            "directsync",
            "unsafe",
        ])),
        prop::option::of(prop::sample::select(vec!["native", "threads", "io_uring"])),
        any::<bool>(),
        "/[a-z]{1,8}(/[a-zA-Z0-9 ,._-]{1,10}){0,2}",
    )
        .prop_map(|(cache, io, readonly, path)| DiskSpec {
            cache,
            io,
            readonly,
            path,
        })
}

prop_compose! {
    fn domain_xml()(
        name in "[A-Za-z0-9_.-][A-Za-z0-9 _.:-]{0,20}",
        title in prop::option::of("[ -~]{0,30}"),
        (value, unit, factor) in prop::sample::select(vec![
            (512u64, "MiB", 1024u64), (1, "GiB", 1024 * 1024), (262144, "KiB", 1), (262144, "k", 1),
        ]),
        cur_pct in 1u64..=100,
        (sockets, cores, threads) in (1u32..3, 1u32..4, 1u32..3),
        current_fewer in any::<bool>(),
        disks in prop::collection::vec(disk_spec(), 0..4),
        nics in prop::collection::vec(prop::option::of(any::<[u8; 3]>()), 0..3),
        serials in prop::collection::vec(prop::sample::select(vec!["pty", "null", "file"]), 0..3),
        reboot in prop::sample::select(vec!["restart", "destroy", "preserve"]),
        uuid in prop::option::of(any::<u128>()),
        cmdline in prop::option::of("[ -~]{0,40}"),
    ) -> (String, u64) {
        let vcpus = sockets * cores * threads;
        let kib = value * factor;
        let mut x = String::from("<domain type='kvm'>\n");
        x += &format!("  <name>{}</name>\n", escape(&name));
        if let Some(u) = uuid {
            x += &format!("  <uuid>{}</uuid>\n", uuid::Uuid::from_u128(u));
        }
        if let Some(t) = title {
            x += &format!("  <title>{}</title>\n", escape(&t));
        }
        x += &format!("  <memory unit='{unit}'>{value}</memory>\n");
        x += &format!("  <currentMemory>{}</currentMemory>\n", (kib * cur_pct / 100).max(1));
        if current_fewer && vcpus > 1 {
            x += &format!("  <vcpu current='{}'>{vcpus}</vcpu>\n", vcpus - 1);
        } else {
            x += &format!("  <vcpu>{vcpus}</vcpu>\n");
        }
        x += &format!("  <cpu mode='custom'><model>qemu64</model><topology sockets='{sockets}' cores='{cores}' threads='{threads}'/><feature policy='disable' name='svm'/></cpu>\n");
        x += "  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>/k</kernel>";
        if let Some(c) = cmdline {
            x += &format!("<cmdline>{}</cmdline>", escape(&c));
        }
        x += "</os>\n";
        x += &format!("  <on_reboot>{reboot}</on_reboot>\n  <devices>\n");
        for (i, d) in disks.iter().enumerate() {
            x += "    <disk type='file' device='disk'><driver name='qemu' type='raw'";
            if let Some(c) = d.cache { x += &format!(" cache='{c}'"); }
            if let Some(io) = d.io { x += &format!(" io='{io}'"); }
            x += &format!("/><source file='{}'/><target dev='vd{}' bus='virtio'/>", escape(&d.path), (b'a' + i as u8) as char);
            if d.readonly { x += "<readonly/>"; }
            x += "</disk>\n";
        }
        for (i, mac) in nics.iter().enumerate() {
            x += "    <interface type='bridge'>";
            if let Some(m) = mac {
                // The index byte keeps MACs unique.
                x += &format!("<mac address='52:54:{i:02x}:{:02x}:{:02x}:{:02x}'/>", m[0], m[1], m[2]);
            }
            x += "<source bridge='br0'/><model type='virtio'/></interface>\n";
        }
        for s in &serials {
            match *s {
                "file" => x += "    <serial type='file'><source path='/tmp/s.log'/></serial>\n",
                t => x += &format!("    <serial type='{t}'/>\n"),
            }
        }
        x += "  </devices>\n</domain>\n";
        (x, kib)
    }
}

// 256 cases each by default; set PROPTEST_CASES for longer runs.
proptest! {
    #[test]
    fn valid_definitions_round_trip((xml, kib) in domain_xml()) {
        let d = Domain::from_xml(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(d.memory_kib, kib);
        let out = d.to_xml();
        let again = Domain::from_xml(&out).unwrap();
        prop_assert_eq!(&d, &again);
        prop_assert_eq!(&out, &again.to_xml());

        let mut filled = d.clone();
        filled.fill_in();
        let out = filled.to_xml();
        let again = Domain::from_xml(&out).unwrap();
        prop_assert_eq!(&filled, &again);
        prop_assert_eq!(out, again.to_xml());
        let paths = RuntimePaths::in_dir("/r");
        prop_assert_eq!(derive_argv(&filled, &paths), derive_argv(&again, &paths));
        prop_assert!(derive_argv(&filled, &paths).is_ok());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Domain::from_xml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_xml_fragments_never_panic(s in "(<[a-z/]{0,8}( [a-z]{1,5}='[^']{0,5}')?/?>|[a-z0-9 &;#]{0,6}){0,40}") {
        let _ = Domain::from_xml(&s);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..40, 0u8..4, "[<>/='\"&;a-z0-9 ]{0,4}"), 1..6),
    ) {
        let files = common::fixtures();
        let mut text = std::fs::read_to_string(which.get(&files)).unwrap().into_bytes();
        for (at, len, op, insert) in edits {
            if text.is_empty() { break; }
            let i = at.index(text.len());
            let end = (i + len).min(text.len());
            match op {
                0 => { text.drain(i..end); }
                1 => { text.splice(i..i, insert.bytes()); }
                2 => { let dup: Vec<u8> = text[i..end].to_vec(); text.splice(i..i, dup); }
                _ => { text.splice(i..end, insert.bytes()); }
            }
        }
        let text = String::from_utf8_lossy(&text);
        if let Ok(mut d) = Domain::from_xml(&text) {
            let out = d.to_xml();
            let again = Domain::from_xml(&out).map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?;
            prop_assert!(d == again, "model changed through the writer:\n{}\n---\n{}", text, out);
            prop_assert_eq!(&out, &again.to_xml());
            d.fill_in();
            let filled = d.to_xml();
            let again = Domain::from_xml(&filled).map_err(|e| TestCaseError::fail(format!("{e}\n{filled}")))?;
            prop_assert!(d == again, "filled-in model changed through the writer:\n{}\n---\n{}", filled, again.to_xml());
            let paths = RuntimePaths::in_dir("/r");
            // Same command line, or the same refusals (their lines move).
            let strip = |r: Result<rvirt_domain::Argv, DeriveError>| {
                r.map_err(|e| match e {
                    DeriveError::Unsupported(l) => {
                        l.into_iter().map(|u| (u.device, u.reason)).collect::<Vec<_>>()
                    }
                    other => vec![(other.to_string(), String::new())],
                })
            };
            prop_assert_eq!(strip(derive_argv(&d, &paths)), strip(derive_argv(&again, &paths)));
        }
    }
}
