//! rvirsh against the real virsh 9.0, both talking to libvirtd's test
//! driver: every command must print the same bytes on stdout and stderr
//! and exit with the same code. See `common/mod.rs` for the setup.

mod common;

use std::io::Write;

use common::{assert_same, domain_xml, raw, reference, rvirsh, same, unique, uri, virsh, LIMIT};
use rvirt_testkit::Spawned;

/// Writes `xml` to a temporary file.
fn xml_file(xml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temp file");
    f.write_all(xml.as_bytes()).expect("write xml");
    f
}

#[test]
fn read_only_commands_match_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("ro");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    assert_eq!(virsh(&["define", path]).code, 0);
    let n = name.as_str();
    for args in [
        vec!["list"],
        vec!["list", "--all"],
        vec!["list", "--inactive"],
        vec!["list", "--all", "--name"],
        vec!["list", "--all", "--uuid"],
        vec!["list", "--all", "--name", "--uuid"],
        vec!["list", "--all", "--title"],
        vec!["list", "--state-running"],
        vec!["list", "--all", "--state-shutoff"],
        vec!["list", "--all", "--autostart"],
        vec!["dominfo", "test"],
        vec!["dominfo", "1"],
        vec!["dominfo", "6695eb01-f6a4-8304-79aa-97f2502e193f"],
        vec!["dominfo", n],
        vec!["domstate", "test"],
        vec!["domstate", "test", "--reason"],
        vec!["domstate", "--domain", n, "--reason"],
        vec!["domid", "test"],
        vec!["domid", n],
        vec!["domid", &uuid],
        vec!["domname", "1"],
        vec!["domname", &uuid],
        vec!["domuuid", "test"],
        vec!["domuuid", "1"],
        vec!["dumpxml", "test"],
        vec!["dumpxml", "test", "--inactive"],
        vec!["dumpxml", n],
        vec!["vcpuinfo", "test"],
        vec!["vcpuinfo", "test", "--pretty"],
        vec!["vcpuinfo", n],
        vec!["domblklist", "test"],
        vec!["domblklist", "test", "--details"],
        vec!["domblklist", n],
        vec!["domblklist", n, "--details", "--inactive"],
        vec!["domiflist", "test"],
        vec!["domiflist", n],
        vec!["version"],
        vec!["version", "--daemon"],
        vec!["uri"],
        vec!["hostname"],
        vec!["nodeinfo"],
        vec!["event", "--list"],
        vec!["list", "--all", "--table", "--name"],
        vec!["list", "--id"],
        vec!["list", "--all", "--id"],
        vec!["list", "--all", "--id", "--name"],
        vec!["list", "--all", "--id", "--uuid", "--name"],
        vec!["list", "--all", "--managed-save"],
        vec!["list", "--all", "--with-checkpoint"],
        vec!["help", "list"],
        vec!["help", "shutdown"],
        vec!["help", "destroy"],
        vec!["-q", "list", "--all"],
        vec!["-q", "domblklist", n],
        vec!["-e", "^A", "uri"],
        vec!["help", "dominfo"],
        vec!["help", "define"],
        vec!["help", "event"],
        vec!["help", "console"],
        vec!["help", "uri"],
        vec!["help", "nodeinfo"],
        vec!["help", "inject-nmi"],
        vec!["help", "domxml-to-native"],
        vec!["help", "events"],
        vec!["help", "nosuchtopic"],
        vec!["-e", "abc", "uri"],
    ] {
        same(&args, &[n, "test"]);
    }
    assert_eq!(virsh(&["undefine", n]).code, 0);
}

#[test]
fn errors_match_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("err");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let bad = xml_file("<domain");
    let n = name.as_str();
    assert_eq!(virsh(&["define", path]).code, 0);
    for args in [
        vec!["dominfo", "nosuchdomain"],
        vec!["domname", "test"],
        vec!["domname", "999"],
        vec!["domid", "1"],
        vec!["start", "test"],
        vec!["start", "nosuchdomain"],
        vec!["start"],
        vec!["undefine", "nosuchdomain"],
        vec!["destroy", n],
        vec!["suspend", n],
        vec!["resume", n],
        vec!["shutdown", n],
        vec!["reboot", n],
        vec!["reboot", n, "--mode", "foo"],
        vec!["inject-nmi", n],
        vec!["inject-nmi", "nosuchdomain"],
        vec!["inject-nmi"],
        vec!["shutdown", "test", "--mode", "acpi"],
        vec!["destroy", n, "--graceful"],
        vec!["undefine", n, "--nvram"],
        vec!["define", "/nonexistent/dom.xml"],
        vec!["define", bad.path().to_str().unwrap()],
        vec!["create", "/nonexistent/dom.xml"],
        vec!["list", "--foo"],
        vec!["list", "extra"],
        vec!["nosuchcommand"],
        vec!["event", "--timeout", "1"],
        vec!["domxml-to-native", "qemu-argv", path],
        vec!["console", n],
        vec!["console", "test"],
    ] {
        same(&args, &[n, "test"]);
    }
    // Creating or starting what already runs.
    assert_eq!(virsh(&["start", n]).code, 0);
    same(&["create", path], &[n]);
    same(&["start", n], &[n]);
    assert_eq!(virsh(&["destroy", n]).code, 0);
    assert_eq!(virsh(&["undefine", n]).code, 0);
    // A socket nobody listens on.
    let u = "test+unix:///default?socket=/nonexistent/sock";
    let v = raw("virsh", &["-c", u, "list"], &[]);
    let r = raw(common::rvirsh_bin(), &["-c", u, "list"], &[]);
    assert_same("list on a missing socket", &v, &r, &[]);
}

/// The lifecycle, run once by virsh and once by rvirsh on a domain of
/// the same name and UUID, step by step.
#[test]
fn lifecycle_matches_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("life");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let n = name.as_str();
    let steps: Vec<Vec<&str>> = vec![
        vec!["define", path],
        vec!["domstate", n, "--reason"],
        vec!["start", n],
        vec!["start", n],
        vec!["list", "--all"],
        vec!["domstate", n, "--reason"],
        vec!["suspend", n],
        vec!["domstate", n, "--reason"],
        vec!["list", "--all", "--state-paused"],
        vec!["resume", n],
        vec!["domstate", n, "--reason"],
        vec!["inject-nmi", n],
        vec!["reboot", n],
        vec!["reboot", n, "--mode", "foo"],
        vec!["shutdown", "test", "--mode", "acpi"],
        vec!["destroy", n, "--graceful"],
        vec!["undefine", n, "--nvram"],
        vec!["autostart", n],
        vec!["dominfo", n],
        vec!["list", "--all", "--autostart", "--name"],
        vec!["autostart", "--disable", n],
        vec!["shutdown", n],
        vec!["domstate", n, "--reason"],
        vec!["start", &uuid],
        vec!["destroy", n],
        vec!["destroy", n],
        vec!["inject-nmi", n],
        vec!["domstate", n, "--reason"],
        vec!["vcpuinfo", n],
        vec!["dominfo", n],
        vec!["undefine", n],
        vec!["list", "--all"],
        vec!["create", path],
        vec!["domstate", n, "--reason"],
        vec!["dominfo", n],
        vec!["-q", "destroy", n],
        vec!["list", "--all", "--name"],
    ];
    let run_all = |tool: fn(&[&str]) -> common::Run| -> Vec<common::Run> {
        steps.iter().map(|s| tool(s)).collect()
    };
    let by_virsh = run_all(virsh);
    let by_rvirsh = run_all(rvirsh);
    for ((s, v), r) in steps.iter().zip(&by_virsh).zip(&by_rvirsh) {
        assert_same(&s.join(" "), v, r, &[n, "test"]);
    }
    // rvirsh did change the daemon's state: the domain is gone again.
    assert_eq!(virsh(&["domstate", n]).code, 1);
}

#[test]
fn domains_by_id_and_uuid_in_messages() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("ids");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let n = name.as_str();
    for tool in [virsh as fn(&[&str]) -> common::Run, rvirsh] {
        assert_eq!(tool(&["define", path]).code, 0);
        assert_eq!(tool(&["start", n]).code, 0);
        let id = tool(&["domid", n]).stdout.trim().to_string();
        let mut out = String::new();
        for args in [
            vec!["suspend", id.as_str()],
            vec!["resume", &uuid],
            vec!["destroy", id.as_str()],
            vec!["autostart", &uuid],
            vec!["undefine", &uuid],
        ] {
            let r = tool(&args);
            out.push_str(&r.stdout.replace(&format!("'{id}'"), "'<id>'"));
            out.push_str(&r.stderr);
        }
        insta_like(&out, &uuid);
    }

    fn insta_like(out: &str, uuid: &str) {
        // virsh names the domain as typed: the id, or the UUID.
        let want = format!(
            "Domain '<id>' suspended\n\nDomain '{uuid}' resumed\n\n\
             Domain '<id>' destroyed\n\nDomain '{uuid}' marked as autostarted\n\n\
             Domain '{uuid}' has been undefined\n\n"
        );
        assert_eq!(out, want);
    }
}

#[test]
fn uri_from_the_environment() {
    let Some(_r) = reference() else { return };
    let u = uri();
    let bin = common::rvirsh_bin();
    for env in [
        vec![("LIBVIRT_DEFAULT_URI", u.as_str())],
        vec![
            ("VIRSH_DEFAULT_CONNECT_URI", u.as_str()),
            (
                "LIBVIRT_DEFAULT_URI",
                "test+unix:///default?socket=/nonexistent",
            ),
        ],
    ] {
        for args in [vec!["uri"], vec!["list", "--all"], vec!["domstate", "test"]] {
            let v = raw("virsh", &args, &env);
            let r = raw(bin, &args, &env);
            assert_same(&format!("{env:?} {}", args.join(" ")), &v, &r, &["test"]);
            assert_eq!(r.code, 0, "{env:?} {args:?}: {}", r.stderr);
        }
    }
}

#[test]
fn edit_matches_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("edit");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let n = name.as_str();
    let u = uri();
    let bin = common::rvirsh_bin();
    for (editor, check) in [
        ("true", None),
        (
            "sed -i s/131072/262144/g",
            Some("<memory unit='KiB'>262144</memory>"),
        ),
        ("sed -i s/<name>/<nameX>/", None),
        ("false", None),
    ] {
        let mut outs = Vec::new();
        for prog in ["virsh", bin] {
            assert_eq!(raw(prog, &["-c", &u, "define", path], &[]).code, 0);
            let r = raw(
                prog,
                &["-c", &u, "edit", n],
                &[("EDITOR", editor), ("VISUAL", "")],
            );
            if let Some(c) = check {
                let xml = raw(prog, &["-c", &u, "dumpxml", n], &[]).stdout;
                assert!(xml.contains(c), "{prog} edit with {editor}: {xml}");
            }
            assert_eq!(raw(prog, &["-c", &u, "undefine", n], &[]).code, 0);
            outs.push(r);
        }
        assert_same(&format!("EDITOR='{editor}' edit"), &outs[0], &outs[1], &[n]);
    }
}

/// An edit the daemon refuses, without a terminal to ask "Try again?" on.
/// virsh 9.0 then prints `error: Failed.` and `Domain '(null)' XML
/// configuration edited.` and exits 0 (its re-edit question fails without
/// a TTY and falls through to success); rvirsh reports the daemon's error
/// and exits 1 instead. The definition stays as it was either way.
#[test]
fn refused_edit_fails_and_keeps_the_definition() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("edbad");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let n = name.as_str();
    assert_eq!(rvirsh(&["define", path]).code, 0);
    let before = rvirsh(&["dumpxml", n, "--inactive"]).stdout;
    let u = uri();
    let r = raw(
        common::rvirsh_bin(),
        &["-c", &u, "edit", n],
        &[("EDITOR", "sed -i s/domain/dom/"), ("VISUAL", "")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "\n");
    assert!(r.stderr.starts_with("error: XML error: "), "{r:?}");
    assert_eq!(rvirsh(&["dumpxml", n, "--inactive"]).stdout, before);
    assert_eq!(rvirsh(&["undefine", n]).code, 0);
}

#[test]
fn event_loop_prints_lifecycle_events_as_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("ev");
    let (probe, probe_uuid) = unique("evprobe");
    let _cleanup = common::Cleanup(vec![name.clone(), probe.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let pf = xml_file(&domain_xml(&probe, &probe_uuid));
    let probe_path = pf.path().to_str().unwrap();
    let u = uri();
    // On `test`, which nothing drives here: each ends by itself after its
    // --timeout with nothing received (a failure, for both).
    let spawn = |prog: &str| {
        Spawned::start(std::process::Command::new(prog).args([
            "-c",
            &u,
            "event",
            "--domain",
            "test",
            "--event",
            "lifecycle",
            "--loop",
            "--timeout",
            "4",
        ]))
    };
    // On every domain: ended with Ctrl+C once our last event is in.
    let spawn_all = |prog: &str| {
        Spawned::start(
            std::process::Command::new(prog).args(["-c", &u, "event", "--all", "--loop"]),
        )
    };
    let on_test = [spawn("virsh"), spawn(common::rvirsh_bin())];
    let mut on_all = [spawn_all("virsh"), spawn_all(common::rvirsh_bin())];
    common::until_loops_listen(&[&on_all[0], &on_all[1]], &probe, || {
        assert_eq!(virsh(&["define", probe_path]).code, 0);
        assert_eq!(virsh(&["undefine", &probe]).code, 0);
    });
    for args in [
        vec!["define", path],
        vec!["start", &name],
        vec!["suspend", &name],
        vec!["resume", &name],
        vec!["destroy", &name],
        vec!["undefine", &name],
    ] {
        assert_eq!(virsh(&args).code, 0, "{args:?}");
    }
    let last = format!("event 'lifecycle' for domain '{name}': Undefined Removed");
    for l in &mut on_all {
        l.until(&last, LIMIT, |o, _| o.contains(&last));
        l.signal(libc::SIGINT);
    }
    let outs: Vec<common::Run> = on_test
        .into_iter()
        .chain(on_all)
        .map(|c| c.output(LIMIT).into())
        .collect();
    // Other clients may drive other domains meanwhile: keep ours.
    let ours = |r: &common::Run| {
        let r = common::without_probe(r, &probe);
        common::Run {
            stdout: r
                .stdout
                .lines()
                .filter(|l| !l.starts_with("event ") || l.contains(&name))
                .map(|l| format!("{l}\n"))
                .collect(),
            ..r
        }
    };
    assert_same("event --domain test --loop", &outs[0], &outs[1], &[]);
    assert_eq!(
        (outs[1].stdout.as_str(), outs[1].code),
        ("event loop timed out\nevents received: 0\n\n", 1)
    );
    // Interrupted after events: a success, for both.
    assert_same("event --all --loop", &ours(&outs[2]), &ours(&outs[3]), &[]);
    assert_eq!(outs[3].code, 0);
    assert!(
        outs[3].stdout.contains(&format!(
            "event 'lifecycle' for domain '{name}': Stopped Destroyed"
        )),
        "{}",
        outs[3].stdout
    );
}

#[test]
fn interrupted_event_loop_matches_virsh() {
    let Some(_r) = reference() else { return };
    let u = uri();
    let runs: Vec<common::Run> = ["virsh", common::rvirsh_bin()]
        .iter()
        .map(|prog| {
            let child = Spawned::start(std::process::Command::new(prog).args([
                "-c",
                &u,
                "event",
                "--domain",
                "test",
                "--event",
                "lifecycle",
                "--loop",
            ]));
            // Ctrl+C once the loop catches it (virsh before it registers
            // its callback, rvirsh after): sent sooner, it ends the tool
            // by the default action, with nothing printed.
            rvirt_testkit::wait_for("a SIGINT handler in the event loop", LIMIT, || {
                rvirt_testkit::catches(child.pid(), libc::SIGINT)
            });
            child.signal(libc::SIGINT);
            child.output(LIMIT).into()
        })
        .collect();
    assert_same("event --loop, then Ctrl+C", &runs[0], &runs[1], &[]);
    assert_eq!(
        runs[1].stdout,
        "event loop interrupted\nevents received: 0\n\n"
    );
}

/// `edit` with a terminal: the define fails, the user is asked "Try
/// again?", types `?` (help), `y` (edit again, which fixes the XML) or
/// `n`; the terminal shows the same through both tools.
#[test]
fn edit_again_on_a_terminal_matches_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("retry");
    let _cleanup = common::Cleanup(vec![name.clone()]);
    let f = xml_file(&domain_xml(&name, &uuid));
    let path = f.path().to_str().unwrap();
    let dir = tempfile::tempdir().expect("tempdir");
    // First run breaks the memory size, the second mends it.
    let editor = dir.path().join("ed.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nif [ -e \"$0.n\" ]; then sed -i 's/>abc</>262144</' \"$1\"; \
         else sed -i 's/>131072</>abc</' \"$1\"; touch \"$0.n\"; fi\n",
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let u = uri();
    for keys in [&b"y"[..], b"?n"] {
        let mut shown = Vec::new();
        for prog in ["virsh", common::rvirsh_bin()] {
            assert_eq!(virsh(&["define", path]).code, 0);
            let _ = std::fs::remove_file(dir.path().join("ed.sh.n"));
            let cmd = format!("{prog} -c '{u}' edit {name}; echo rc=$?");
            let mut child = Spawned::start(
                std::process::Command::new("script")
                    .args(["-qefc", &cmd, "/dev/null"])
                    .env("EDITOR", &editor)
                    .env_remove("VISUAL")
                    .stdin(std::process::Stdio::piped()),
            );
            // Each key once the question is on the terminal: both tools
            // put it in raw mode before they ask, and a key typed sooner
            // would wait in the line discipline for a newline, then be
            // flushed by the switch to raw mode.
            for (i, k) in keys.iter().enumerate() {
                child.until(&format!("question {}", i + 1), LIMIT, |o, _| {
                    o.matches("Try again? [").count() > i
                });
                let stdin = child.stdin();
                stdin.write_all(&[*k]).expect("type");
                stdin.flush().expect("flush");
            }
            child.until("the shell's rc= line", LIMIT, |o, _| o.contains("rc="));
            child.close_stdin();
            let out = child.output(LIMIT);
            // libvirt's client library (not virsh) mentions polkit on a tty.
            let text: String = String::from_utf8_lossy(&out.stdout)
                .split_inclusive('\n')
                .filter(|l| !l.contains("polkit"))
                .collect();
            shown.push(text);
            let xml = virsh(&["dumpxml", &name]).stdout;
            let want = if keys == b"y" { "262144" } else { "131072" };
            assert!(
                xml.contains(&format!("<memory unit='KiB'>{want}</memory>")),
                "{prog}: {xml}"
            );
            assert_eq!(virsh(&["undefine", &name]).code, 0);
        }
        assert_eq!(
            shown[0], shown[1],
            "keys {keys:?}: virsh (left) and rvirsh (right) differ"
        );
        assert!(
            shown[1].contains("Failed. Try again? [y,n,i,f,?]: "),
            "{}",
            shown[1]
        );
    }
}

/// The pool and volume commands on the test driver's `default-pool`,
/// with a volume made for the purpose: the same bytes as virsh's.
#[test]
fn storage_commands_match_virsh() {
    let Some(_r) = reference() else { return };
    let (vol, _) = unique("vol");
    let v = vol.as_str();
    assert_eq!(virsh(&["vol-create-as", "default-pool", v, "10M"]).code, 0);
    let path = format!("/default-pool/{v}");
    let p = path.as_str();
    let upload = xml_file("some bytes to upload\n");
    let up = upload.path().to_str().unwrap();
    let down = tempfile::NamedTempFile::new().unwrap();
    let down = down.path().to_str().unwrap();
    for args in [
        vec!["pool-list"],
        vec!["pool-list", "--all"],
        vec!["pool-list", "--all", "--details"],
        vec!["pool-list", "--details"],
        vec!["pool-list", "--inactive"],
        vec!["pool-list", "--name"],
        vec!["pool-list", "--uuid"],
        vec!["pool-list", "--all", "--name", "--uuid"],
        vec!["pool-list", "--type", "dir"],
        vec!["pool-list", "--type", "fs"],
        vec!["pool-list", "--type", "foo"],
        vec!["pool-list", "--persistent"],
        vec!["pool-list", "--transient"],
        vec!["pool-list", "--autostart"],
        vec!["-q", "pool-list", "--all", "--details"],
        vec!["pool-info", "default-pool"],
        vec!["pool-info", "default-pool", "--bytes"],
        vec!["pool-info", "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"],
        vec!["pool-dumpxml", "default-pool"],
        vec!["pool-dumpxml", "--inactive", "default-pool"],
        vec!["pool-uuid", "default-pool"],
        vec!["pool-name", "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"],
        vec!["vol-list", "default-pool"],
        vec!["vol-list", "default-pool", "--details"],
        vec!["vol-info", "--pool", "default-pool", v],
        vec!["vol-info", "--pool", "default-pool", v, "--bytes"],
        vec!["vol-dumpxml", "--pool", "default-pool", v],
        vec!["vol-path", "--pool", "default-pool", v],
        vec!["vol-key", "--pool", "default-pool", v],
        vec!["vol-name", p],
        vec!["vol-pool", p],
        vec!["vol-pool", "--uuid", p],
        vec!["vol-upload", "--pool", "default-pool", v, up],
        vec!["vol-download", "--pool", "default-pool", v, down],
        vec!["vol-create-as", "default-pool", "q", "1M", "--print-xml"],
        vec![
            "vol-create-as",
            "default-pool",
            "q",
            "1M",
            "--format",
            "qcow2",
            "--print-xml",
        ],
        vec![
            "pool-define-as",
            "q",
            "dir",
            "--target",
            "/q",
            "--print-xml",
        ],
        vec!["help", "pool-list"],
        vec!["help", "pool-info"],
        vec!["help", "vol-info"],
        vec!["help", "vol-create-as"],
        vec!["help", "volume"],
        // Errors.
        vec!["pool-info", "nosuch"],
        vec!["pool-info"],
        vec!["vol-info", "nosuch"],
        vec!["vol-info", "--pool", "default-pool", "nosuch"],
        vec!["vol-info", "--pool", "nosuch", "x"],
        vec!["vol-list"],
        vec!["vol-create-as", "default-pool", v, "1M"],
        vec![
            "vol-create-as",
            "default-pool",
            "q",
            "99999999999999999999999",
        ],
        vec!["pool-start", "default-pool"],
        vec!["pool-undefine", "default-pool"],
        vec!["pool-delete", "default-pool"],
    ] {
        same(&args, &[v]);
    }
    assert_eq!(virsh(&["vol-delete", "--pool", "default-pool", v]).code, 0);
    same(&["vol-info", "--pool", "default-pool", v], &[v]);
}

/// A network of the test driver named `name`.
fn network_xml(name: &str) -> String {
    format!(
        "<network>\n  <name>{name}</name>\n  <forward mode='nat'/>\n  <bridge name='rvref0'/>\n  \
         <ip address='10.250.0.1' netmask='255.255.255.0'>\n    <dhcp>\n      \
         <range start='10.250.0.2' end='10.250.0.9'/>\n    </dhcp>\n  </ip>\n</network>\n"
    )
}

/// Runs `args` with virsh, then `undo` with virsh, then `args` with
/// rvirsh, and compares: for commands that change the driver's state.
fn same_after(args: &[&str], undo: &[&str], names: &[&str]) {
    let v = virsh(args);
    assert_eq!(virsh(undo).code, 0, "virsh {undo:?}");
    let r = rvirsh(args);
    assert_same(&args.join(" "), &v, &r, names);
}

/// Removes the test's networks from the shared driver, however the test ends.
struct NetCleanup(Vec<String>);

impl Drop for NetCleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = virsh(&["net-destroy", n]);
            let _ = virsh(&["net-undefine", n]);
        }
    }
}

#[test]
fn network_commands_match_virsh() {
    let Some(_r) = reference() else { return };
    let (name, _) = unique("net");
    let _cleanup = NetCleanup(vec![name.clone(), format!("{name}t")]);
    let n = name.as_str();
    let f = xml_file(&network_xml(n));
    let path = f.path().to_str().unwrap();
    let bad = xml_file(
        "<network><name>bad</name><ip address='10.251.0.1' netmask='255.255.255.0'>\
         <dhcp><range start='10.252.0.2' end='10.252.0.9'/></dhcp></ip></network>",
    );
    let bad_path = bad.path().to_str().unwrap();
    let host = xml_file("<host mac='52:54:00:00:00:77' name='h' ip='10.250.0.7'/>");
    let host_path = host.path().to_str().unwrap();
    same_after(&["net-define", path], &["net-undefine", n], &[n]);
    let uuid = virsh(&["net-uuid", n]).stdout.trim().to_string();
    for args in [
        vec!["net-list"],
        vec!["net-list", "--all"],
        vec!["net-list", "--inactive"],
        vec!["net-list", "--all", "--name"],
        vec!["net-list", "--all", "--uuid"],
        vec!["net-list", "--all", "--table"],
        vec!["net-list", "--persistent", "--all"],
        vec!["net-list", "--transient"],
        vec!["net-list", "--autostart", "--all"],
        vec!["net-list", "--no-autostart", "--all"],
        vec!["net-list", "--name", "--uuid"],
        vec!["-q", "net-list", "--all"],
        vec!["net-info", "default"],
        vec!["net-info", n],
        vec!["net-info", &uuid],
        vec!["net-info", "--network", n],
        vec!["net-uuid", n],
        vec!["net-name", &uuid],
        vec!["net-dumpxml", "default"],
        vec!["net-dumpxml", n],
        vec!["net-event", "--list"],
        vec!["domifaddr", "test"],
        vec!["domifaddr", "test", "--full"],
        vec!["domifaddr", "test", "--source", "lease"],
        vec!["domifaddr", "test", "--interface", "nosuch"],
        vec!["help", "net-list"],
        vec!["help", "net-info"],
        vec!["help", "net-update"],
        vec!["help", "net-dhcp-leases"],
        vec!["help", "domifaddr"],
        // Errors, as the driver and virsh word them.
        vec!["net-info", "nosuch"],
        vec!["net-name", "nosuch"],
        vec!["net-uuid"],
        vec!["net-start", "default"],
        vec!["net-destroy", "nosuch"],
        vec!["net-undefine", "default"],
        vec!["net-define", bad_path],
        vec!["net-define", "/nonexistent/net.xml"],
        vec!["net-dhcp-leases", "default"],
        vec!["net-update", n, "bogus", "ip-dhcp-host", host_path],
        vec!["net-update", n, "add", "bogus", host_path],
        vec![
            "net-update",
            n,
            "delete",
            "ip-dhcp-host",
            host_path,
            "--config",
        ],
        vec![
            "net-update",
            n,
            "add",
            "ip-dhcp-host",
            host_path,
            "--current",
            "--live",
        ],
        vec!["net-event", "--event", "nosuch"],
        vec!["domifaddr", "nosuch"],
    ] {
        same(&args, &[n]);
    }
    same_after(&["net-start", n], &["net-destroy", n], &[n]);
    same(&["net-start", n], &[n]);
    same(&["net-list", "--all"], &[n]);
    same_after(&["net-destroy", n], &["net-start", n], &[n]);
    same_after(
        &["net-autostart", n],
        &["net-autostart", n, "--disable"],
        &[n],
    );
    same_after(
        &["net-autostart", n, "--disable"],
        &["net-autostart", n],
        &[n],
    );
    same(&["net-autostart", n, "--disable"], &[n]);
    same_after(
        &[
            "net-update",
            n,
            "add",
            "ip-dhcp-host",
            host_path,
            "--config",
        ],
        &[
            "net-update",
            n,
            "delete",
            "ip-dhcp-host",
            host_path,
            "--config",
        ],
        &[n],
    );
    same(
        &[
            "net-update",
            n,
            "add-last",
            "ip-dhcp-host",
            "<host mac='52:54:00:00:00:78' ip='10.250.0.8'/>",
            "--live",
        ],
        &[n],
    );
    same(&["net-dumpxml", n], &[n]);
    same_after(&["net-destroy", n], &["net-start", n], &[n]);
    same_after(&["net-undefine", n], &["net-define", path], &[n]);
    same(&["net-list", "--all"], &[n]);
    let transient = xml_file(&network_xml(&format!("{n}t")));
    let tpath = transient.path().to_str().unwrap();
    let tn = format!("{n}t");
    same_after(&["net-create", tpath], &["net-destroy", &tn], &[n, &tn]);
    same(&["net-list", "--transient"], &[n, &tn]);
    same_after(&["net-destroy", &tn], &["net-create", tpath], &[n, &tn]);
    same(&["net-list", "--all"], &[n]);
}

/// The graphical console's commands on a test-driver domain with a VNC
/// server, on one without, and on a stopped one; screenshot's stream
/// (the test driver's PNG) into a file both tools write alike.
#[test]
fn graphics_commands_match_virsh() {
    let Some(_r) = reference() else { return };
    let (name, uuid) = unique("gfx");
    let (off, off_uuid) = unique("gfxoff");
    let _cleanup = common::Cleanup(vec![name.clone(), off.clone()]);
    let vnc = "<graphics type='vnc' port='5905' autoport='no' listen='0.0.0.0' passwd='pw'>\n      <listen type='address' address='0.0.0.0'/>\n    </graphics>\n  </devices>";
    let f = xml_file(&domain_xml(&name, &uuid).replace("</devices>", vnc));
    let g = xml_file(&domain_xml(&off, &off_uuid).replace("</devices>", vnc));
    assert_eq!(virsh(&["define", f.path().to_str().unwrap()]).code, 0);
    assert_eq!(virsh(&["define", g.path().to_str().unwrap()]).code, 0);
    assert_eq!(virsh(&["start", &name]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    let shot = shot.to_str().unwrap();
    let (n, o) = (name.as_str(), off.as_str());
    for args in [
        vec!["vncdisplay", n],
        vec!["domdisplay", n],
        vec!["domdisplay", n, "--include-password"],
        vec!["domdisplay", n, "--type", "vnc", "--all"],
        vec!["domdisplay", n, "--type", "spice"],
        vec!["vncdisplay", "test"],
        vec!["domdisplay", "test"],
        vec!["vncdisplay", o],
        vec!["domdisplay", o],
        vec!["vncdisplay", "nosuchdomain"],
        vec!["screenshot", "test", "--file", shot],
        vec!["screenshot", "test", shot],
        vec!["screenshot", "test", "--screen", "x"],
        vec!["screenshot", "nosuchdomain", shot],
        vec!["screenshot", o, shot],
        vec!["screenshot", "test", "--file", "/nonexistent/dir/x.png"],
        vec!["help", "screenshot"],
        vec!["help", "domdisplay"],
        vec!["help", "vncdisplay"],
    ] {
        same(&args, &[n, o, "test"]);
    }
    // Both wrote the test driver's picture.
    let v = std::fs::read(shot).unwrap();
    assert_eq!(&v[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(virsh(&["destroy", n]).code, 0);
    assert_eq!(virsh(&["undefine", n]).code, 0);
    assert_eq!(virsh(&["undefine", o]).code, 0);
}
