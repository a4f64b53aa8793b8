//! Ansible's `community.libvirt.virt` module against rvirtd, as a playbook
//! would use it: list_vms, info, freemem, nodeinfo, define, state changes
//! and their idempotence, undefine. scripts/setup.sh installs ansible-core
//! and the collection (from PyPI's `ansible` wheel) under
//! /usr/local/share/rvirt/ansible (or `$RVIRT_ANSIBLE_COLLECTIONS`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{domain_xml, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::Spawned;
use serde_json::Value;

/// A playbook run may start Python a dozen times on a loaded machine.
const PLAYBOOK_LIMIT: Duration = Duration::from_secs(300);

fn collections() -> Option<PathBuf> {
    let dir = std::env::var_os("RVIRT_ANSIBLE_COLLECTIONS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/share/rvirt/ansible"));
    let module = dir.join("ansible_collections/community/libvirt/plugins/modules/virt.py");
    let playbook = rvirt_testkit::try_run(
        Command::new("ansible-playbook").arg("--version"),
        Duration::from_secs(60),
    )
    .is_ok_and(|o| o.status.success());
    if module.exists() && playbook && std::path::Path::new("/usr/bin/python3").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
        "ansible-playbook and community.libvirt (scripts/setup.sh) are required: RVIRT_REQUIRE_REFERENCE is set"
    );
    eprintln!("Ansible or community.libvirt not installed: test skipped");
    None
}

/// Runs `tasks` (YAML, one task per line item) against rvirtd and returns
/// each task's result for localhost, in order.
fn play(d: &Rvirtd, collections: &PathBuf, tasks: &str) -> Vec<Value> {
    let book = format!(
        "- hosts: localhost\n  gather_facts: false\n  vars:\n    uri: \"{}\"\n  tasks:\n{tasks}",
        d.uri()
    );
    let path = d.root().join("play.yml");
    std::fs::write(&path, book).unwrap();
    let out = Spawned::start(
        Command::new("ansible-playbook")
            .args(["-i", "localhost,", "-c", "local"])
            // The module imports libvirt-python, Debian's.
            .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
            .arg(&path)
            .env("ANSIBLE_COLLECTIONS_PATH", collections)
            .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
            .env("ANSIBLE_LOCAL_TEMP", d.root().join("ansible-tmp"))
            .env("ANSIBLE_HOME", d.root().join("ansible-home"))
            .stdin(Stdio::null()),
    )
    .on_fail(d.reporter())
    .output(PLAYBOOK_LIMIT);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ansible-playbook printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["plays"][0]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks: {report}"))
        .iter()
        .map(|t| t["hosts"]["localhost"].clone())
        .collect()
}

fn task(args: &str) -> String {
    format!("    - community.libvirt.virt: {{{args}, uri: \"{{{{ uri }}}}\"}}\n")
}

#[test]
fn community_libvirt_virt_module() {
    let Some(collections) = collections() else {
        return;
    };
    let d = Rvirtd::start();
    std::fs::write(d.root().join("dom.xml"), domain_xml("ans", Guest::Ticker)).unwrap();
    let define = format!(
        "command: define, xml: \"{{{{ lookup('file', '{}') }}}}\"",
        d.root().join("dom.xml").display()
    );
    let tasks: String = [
        define.as_str(),
        define.as_str(),
        "command: list_vms",
        "name: ans, state: running",
        "name: ans, state: running",
        "name: ans, state: paused",
        "name: ans, command: status",
        "name: ans, state: running",
        "command: info",
        "command: freemem",
        "command: nodeinfo",
        "name: ans, state: destroyed",
        "name: ans, state: destroyed",
        "name: ans, command: undefine",
        "command: list_vms",
    ]
    .iter()
    .map(|a| task(a))
    .collect();
    let r = play(&d, &collections, &tasks);
    assert_eq!(r.len(), 15, "{r:?}");
    for (i, t) in r.iter().enumerate() {
        assert_ne!(t["failed"], Value::Bool(true), "task {i}: {t}");
    }
    let changed: Vec<bool> = r
        .iter()
        .map(|t| t["changed"] == Value::Bool(true))
        .collect();
    // define, define again (same XML: unchanged), list, start, start again
    // (already running), pause, status, resume, info, freemem, nodeinfo,
    // destroy, destroy again, undefine, list.
    assert_eq!(
        changed,
        [
            true, false, false, true, false, true, false, true, false, false, false, true, false,
            true, false
        ]
    );
    assert_eq!(r[2]["list_vms"], serde_json::json!(["ans"]));
    assert_eq!(r[6]["status"], "paused");
    assert_eq!(r[8]["ans"]["state"], "running", "{}", r[8]);
    assert_eq!(r[8]["ans"]["maxMem"], "65536");
    let free = r[9]["freemem"].as_u64().unwrap_or(0);
    assert!(free > 0, "freemem: {}", r[9]);
    assert_eq!(r[10]["numanodes"], "1");
    assert_eq!(r[14]["list_vms"], serde_json::json!([]));
    assert!(!d.root().join("etc/rvirt/qemu/ans.xml").exists());
}
