//! The real `virsh` (Debian's libvirt-clients) managing rvirt VMs
//! through rvirtd, end to end with real rvirt-vmm processes.

mod common;

use std::time::Duration;

use common::{domain_xml, have_virsh, kernel_xml, last_count, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{wait_for, Spawned};

/// The table layout virsh prints (virsh-outputs.txt), for our rows.
fn table(rows: &[(&str, &str, &str)]) -> String {
    let name_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
    let id_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(2);
    let state_w = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(5);
    let mut out = format!(" {:<id_w$}   {:<name_w$}   {}\n", "Id", "Name", "State");
    out.push_str(&"-".repeat(id_w + name_w + state_w + 9));
    out.push('\n');
    for (id, name, state) in rows {
        out.push_str(&format!(" {id:<id_w$}   {name:<name_w$}   {state}\n"));
    }
    out.push('\n');
    out
}

#[test]
fn define_start_inspect_shutdown_undefine() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let file = d.xml_file("pb.xml", &domain_xml("pb", Guest::Powerbtn));
    assert_eq!(
        d.ok(&["define", &file]),
        format!("Domain 'pb' defined from {file}\n\n")
    );
    assert_eq!(d.ok(&["list", "--all"]), table(&[("-", "pb", "shut off")]));
    assert_eq!(d.state("pb"), "shut off (unknown)");
    assert_eq!(d.ok(&["start", "pb"]), "Domain 'pb' started\n\n");
    assert_eq!(d.ok(&["list"]), table(&[("1", "pb", "running")]));
    assert_eq!(d.state("pb"), "running (booted)");
    assert_eq!(d.ok(&["domid", "pb"]), "1\n\n");
    assert_eq!(d.ok(&["domname", "1"]), "pb\n\n");
    let uuid = d.ok(&["domuuid", "pb"]).trim().to_string();
    assert_eq!(uuid.len(), 36, "{uuid}");

    let info = d.ok(&["dominfo", "pb"]);
    let expect = [
        "Id:             1".to_string(),
        "Name:           pb".into(),
        format!("UUID:           {uuid}"),
        "OS Type:        hvm".into(),
        "State:          running".into(),
        "CPU(s):         1".into(),
        "Max memory:     65536 KiB".into(),
        "Used memory:    65536 KiB".into(),
        "Persistent:     yes".into(),
        "Autostart:      disable".into(),
        "Managed save:   no".into(),
        "Security model: none".into(),
        "Security DOI:   0".into(),
    ];
    for line in &expect {
        assert!(info.lines().any(|l| l == line), "{line:?} not in\n{info}");
    }
    let xml = d.ok(&["dumpxml", "pb"]);
    assert!(
        xml.starts_with("<domain type='kvm' id='1'>\n  <name>pb</name>\n"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<uuid>{uuid}</uuid>")));
    let inactive = d.ok(&["dumpxml", "--inactive", "pb"]);
    assert!(inactive.starts_with("<domain type='kvm'>\n"), "{inactive}");
    assert_eq!(
        d.ok(&["vcpuinfo", "pb"]),
        format!(
            "VCPU:           0\nCPU:            0\nState:          running\nCPU Affinity:   {}\n\n",
            "y".repeat(std::thread::available_parallelism().unwrap().get())
        )
    );
    assert_eq!(
        d.ok(&["vcpucount", "pb"]),
        "maximum      config         1\nmaximum      live           1\n\
         current      config         1\ncurrent      live           1\n\n"
    );

    // The guest's output reaches the domain log; then the ACPI button.
    d.wait_log("pb", "PWRBTN_ARMED");
    assert_eq!(
        d.ok(&["shutdown", "pb"]),
        "Domain 'pb' is being shutdown\n\n"
    );
    d.wait_state("pb", "shut off (shutdown)");
    assert!(d.log("pb").contains("DONE"));
    assert_eq!(d.ok(&["domid", "pb"]), "-\n\n");
    // As virsh-outputs.txt shows it for a shut-off domain.
    assert_eq!(
        d.ok(&["vcpuinfo", "pb"]),
        format!(
            "VCPU:           0\nCPU:            N/A\nState:          N/A\nCPU time        N/A\nCPU Affinity:   {}\n\n",
            "y".repeat(std::thread::available_parallelism().unwrap().get())
        )
    );
    assert_eq!(
        d.ok(&["undefine", "pb"]),
        "Domain 'pb' has been undefined\n\n"
    );
    assert_eq!(d.ok(&["list", "--all"]), table(&[]));
    assert!(!d.root().join("etc/rvirt/qemu/pb.xml").exists());
    assert!(d.log("pb").contains("DONE"), "the log is kept");
}

#[test]
fn suspend_resume_destroy() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let file = d.xml_file("c.xml", &domain_xml("counter", Guest::Counter));
    d.ok(&["define", &file]);
    d.ok(&["start", "counter"]);
    d.wait_log("counter", "COUNT 3");
    assert_eq!(
        d.ok(&["suspend", "counter"]),
        "Domain 'counter' suspended\n\n"
    );
    assert_eq!(d.state("counter"), "paused (user)");
    assert_eq!(d.ok(&["list"]), table(&[("1", "counter", "paused")]));
    assert_eq!(
        d.ok(&["domstats", "--state", "counter"]),
        "Domain: 'counter'\n  state.state=3\n  state.reason=1\n\n"
    );
    assert_eq!(d.ok(&["domcontrol", "counter"]), "ok\n\n");
    std::thread::sleep(Duration::from_millis(200));
    let frozen = last_count(&d.log("counter"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(last_count(&d.log("counter")), frozen, "a paused guest runs");
    assert_eq!(d.ok(&["resume", "counter"]), "Domain 'counter' resumed\n\n");
    assert_eq!(d.state("counter"), "running (unpaused)");
    wait_for("the counter to move", Duration::from_secs(10), || {
        last_count(&d.log("counter")) > frozen
    });
    assert_eq!(
        d.ok(&["destroy", "counter"]),
        "Domain 'counter' destroyed\n\n"
    );
    assert_eq!(d.state("counter"), "shut off (destroyed)");
    let err = d.fails(&["destroy", "counter"]);
    assert_eq!(
        err,
        "error: Failed to destroy domain 'counter'\n\
         error: Requested operation is not valid: domain is not running\n"
    );
    // Ids only grow.
    d.ok(&["start", "counter"]);
    assert_eq!(d.ok(&["domid", "counter"]), "2\n\n");
    d.ok(&["destroy", "counter"]);
}

#[test]
fn start_paused_and_transient_create() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let file = d.xml_file("c.xml", &domain_xml("tr", Guest::Counter));
    assert_eq!(
        d.ok(&["create", &file, "--paused"]),
        format!("Domain 'tr' created from {file}\n\n")
    );
    assert_eq!(d.state("tr"), "paused (user)");
    assert_eq!(
        d.ok(&["dominfo", "tr"])
            .lines()
            .find(|l| l.starts_with("Persistent")),
        Some("Persistent:     no")
    );
    d.ok(&["resume", "tr"]);
    d.wait_log("tr", "COUNT 2");
    d.ok(&["destroy", "tr"]);
    // A transient domain disappears when it stops.
    assert_eq!(
        d.fails(&["dominfo", "tr"]),
        "error: failed to get domain 'tr'\n"
    );

    d.ok(&["define", &file]);
    d.ok(&["start", "--paused", "tr"]);
    assert_eq!(d.state("tr"), "paused (user)");
    // Undefining a running domain makes it transient; it goes when it stops.
    d.ok(&["undefine", "tr"]);
    assert_eq!(d.ok(&["list", "--all", "--name"]), "tr\n\n");
    d.ok(&["destroy", "tr"]);
    assert_eq!(d.ok(&["list", "--all", "--name"]), "\n");
}

#[test]
fn bad_input_changes_nothing() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let good = d.xml_file("g.xml", &domain_xml("keep", Guest::Counter));
    d.ok(&["define", &good]);
    let before = d.ok(&["dumpxml", "keep"]);
    let on_disk = std::fs::read(d.root().join("etc/rvirt/qemu/keep.xml")).unwrap();

    let broken = d.xml_file(
        "b.xml",
        "<domain type='kvm'><name>keep</name><memory>x</memory>",
    );
    let err = d.fails(&["define", &broken]);
    assert!(
        err.starts_with(&format!(
            "error: Failed to define domain from {broken}\nerror: XML error: "
        )),
        "{err}"
    );
    let invalid = d.xml_file(
        "i.xml",
        &domain_xml("keep", Guest::Counter)
            .replace("<memory unit='MiB'>64", "<memory unit='MiB'>zero"),
    );
    let err = d.fails(&["define", &invalid]);
    assert!(err.contains("error: XML error: "), "{err}");
    assert_eq!(d.ok(&["dumpxml", "keep"]), before);
    assert_eq!(
        std::fs::read(d.root().join("etc/rvirt/qemu/keep.xml")).unwrap(),
        on_disk
    );

    let slash = d.xml_file("s.xml", &domain_xml("a/b", Guest::Counter));
    assert!(d
        .fails(&["define", &slash])
        .contains("must not contain '/'"));
    let dots = d.xml_file("d.xml", &domain_xml("..", Guest::Counter));
    assert!(d.fails(&["define", &dots]).contains("error: XML error: "));
    let names: Vec<_> = std::fs::read_dir(d.root().join("etc/rvirt/qemu"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".xml")).count(),
        1,
        "{names:?}"
    );

    assert_eq!(
        d.fails(&["dominfo", "nosuch"]),
        "error: failed to get domain 'nosuch'\n"
    );
    assert_eq!(
        d.fails(&["undefine", "nosuch"]),
        "error: failed to get domain 'nosuch'\n"
    );

    d.ok(&["start", "keep"]);
    assert_eq!(
        d.fails(&["start", "keep"]),
        "error: Domain is already active\n"
    );
    d.ok(&["destroy", "keep"]);

    // A kernel that does not exist: rvirt-vmm's message, shut off (failed), log kept.
    let missing = d.xml_file("m.xml", &kernel_xml("nokernel", "/nonexistent/guest.elf"));
    d.ok(&["define", &missing]);
    let err = d.fails(&["start", "nokernel"]);
    assert!(err.starts_with("error: Failed to start domain 'nokernel'\nerror: internal error: process exited while connecting to monitor: "), "{err}");
    assert!(err.contains("/nonexistent/guest.elf"), "{err}");
    assert_eq!(d.state("nokernel"), "shut off (failed)");
    assert!(d.log("nokernel").contains("/nonexistent/guest.elf"));
}

#[test]
fn vms_survive_a_daemon_kill() {
    if !have_virsh() {
        return;
    }
    let mut d = Rvirtd::start();
    for name in ["a", "b", "c", "dead"] {
        let f = d.xml_file(&format!("{name}.xml"), &domain_xml(name, Guest::Counter));
        d.ok(&["define", &f]);
        d.ok(&["start", name]);
    }
    d.ok(&["suspend", "b"]);
    let root = d.root().to_path_buf();
    let pid_of = |name: &str| -> i32 {
        std::fs::read_to_string(root.join(format!("run/rvirt/qemu/{name}/vmm.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let pids: Vec<i32> = ["a", "b", "c"].iter().map(|n| pid_of(n)).collect();
    let dead = pid_of("dead");
    d.kill9();
    // One VM dies while the daemon is away.
    // SAFETY: kill sends SIGKILL to one positive pid, our VM's.
    unsafe { libc::kill(dead, libc::SIGKILL) };
    d.spawn();
    assert_eq!(
        d.ok(&["list", "--all"]),
        table(&[
            ("1", "a", "running"),
            ("2", "b", "paused"),
            ("3", "c", "running"),
            ("-", "dead", "shut off")
        ])
    );
    assert_eq!(d.state("dead"), "shut off (crashed)");
    assert_eq!(d.state("b"), "paused (user)");
    assert!(d.log("dead").contains("COUNT 0"), "the log is kept");
    let now: Vec<i32> = ["a", "b", "c"].iter().map(|n| pid_of(n)).collect();
    assert_eq!(now, pids);
    let before = last_count(&d.log("a"));
    wait_for("the counter to move", Duration::from_secs(10), || {
        last_count(&d.log("a")) > before
    });
    for name in ["a", "c"] {
        d.ok(&["suspend", name]);
        assert_eq!(d.state(name), "paused (user)");
    }
    for name in ["a", "b", "c"] {
        d.ok(&["resume", name]);
        assert_eq!(d.state(name), "running (unpaused)");
        d.ok(&["destroy", name]);
        assert_eq!(d.state(name), "shut off (destroyed)");
    }
    // New ids continue after the adopted ones.
    d.ok(&["start", "dead"]);
    assert_eq!(d.ok(&["domid", "dead"]), "5\n\n");
    d.ok(&["destroy", "dead"]);
}

#[test]
fn lifecycle_events_reach_virsh_event() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let f = d.xml_file("e.xml", &domain_xml("ev", Guest::Counter));
    d.ok(&["define", &f]);
    let mut watcher = Spawned::start(std::process::Command::new("virsh").args([
        "-c",
        &d.uri(),
        "event",
        "--domain",
        "ev",
        "--event",
        "lifecycle",
        "--loop",
        "--timeout",
        "30",
    ]))
    .on_fail(d.reporter());
    wait_for("virsh event to register", Duration::from_secs(15), || {
        std::fs::read_to_string(d.root().join("rvirtd.stderr"))
            .unwrap_or_default()
            .contains("event callback registered")
    });
    d.ok(&["start", "ev"]);
    d.ok(&["suspend", "ev"]);
    d.ok(&["resume", "ev"]);
    d.ok(&["destroy", "ev"]);
    // virsh prints each event as it comes; four are expected.
    let mut text = String::new();
    let mut events = Vec::new();
    while let Some(line) = watcher.line(Duration::from_secs(30)) {
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("events received") {
            break;
        }
        if line.starts_with("event '") {
            events.push(line);
        }
        if events.len() == 4 {
            break;
        }
    }
    drop(watcher);
    assert_eq!(
        events,
        [
            "event 'lifecycle' for domain 'ev': Started Booted",
            "event 'lifecycle' for domain 'ev': Suspended Paused",
            "event 'lifecycle' for domain 'ev': Resumed Unpaused",
            "event 'lifecycle' for domain 'ev': Stopped Destroyed",
        ],
        "{text}"
    );
}

#[test]
fn host_and_version_commands() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let v = d.ok(&["version", "--daemon"]);
    assert!(v.contains("Running hypervisor: QEMU "), "{v}");
    assert!(v.contains("Running against daemon: 9.0.0"), "{v}");
    assert!(!d.ok(&["hostname"]).trim().is_empty());
    assert!(d.ok(&["nodeinfo"]).contains("CPU(s):"));
    let caps = d.ok(&["capabilities"]);
    assert!(
        caps.contains("<os_type>hvm</os_type>") && caps.contains("<domain type='kvm'/>"),
        "{caps}"
    );
    let f = d.xml_file("n.xml", &domain_xml("native", Guest::Hello));
    let argv = d.ok(&["domxml-to-native", "qemu-argv", &f]);
    assert!(
        argv.contains("-name guest=native,debug-threads=on \\\n"),
        "{argv}"
    );
    assert!(argv.contains("-no-shutdown"), "{argv}");
    d.ok(&["define", &f]);
    d.ok(&["autostart", "native"]);
    assert!(d
        .ok(&["dominfo", "native"])
        .contains("Autostart:      enable"));
    assert_eq!(
        d.ok(&["list", "--all", "--autostart", "--name"]),
        "native\n\n"
    );
    d.ok(&["autostart", "--disable", "native"]);
    assert!(d
        .ok(&["dominfo", "native"])
        .contains("Autostart:      disable"));
}

/// rvirtd's own count of threads and descriptors in /proc.
fn tasks_and_fds(pid: i32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}

/// What a running domain costs rvirtd (issue 21: density), with its
/// serial on the VMM's stdout: two descriptors (its pidfd and its monitor
/// connection, one descriptor shared by the QMP client's writer and
/// reader) and two threads (its follower and the QMP client's reader);
/// given back when it stops.
#[test]
fn a_running_domain_costs_rvirtd_two_descriptors_and_two_threads() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let pid = d.child.as_ref().expect("rvirtd").id() as i32;
    for i in 0..3 {
        let file = d.xml_file(
            &format!("i{i}.xml"),
            &domain_xml(&format!("idle{i}"), Guest::Idle),
        );
        d.ok(&["define", &file]);
    }
    // virsh has gone: its connection's threads end at once.
    std::thread::sleep(Duration::from_millis(500));
    let (threads, fds) = tasks_and_fds(pid);
    for i in 0..3 {
        d.ok(&["start", &format!("idle{i}")]);
    }
    wait_for(
        "rvirtd to hold 2 more threads and descriptors per domain",
        Duration::from_secs(10),
        || tasks_and_fds(pid) == (threads + 6, fds + 6),
    );
    for i in 0..3 {
        d.ok(&["destroy", &format!("idle{i}")]);
    }
    wait_for("rvirtd to give them back", Duration::from_secs(10), || {
        tasks_and_fds(pid) == (threads, fds)
    });
}
