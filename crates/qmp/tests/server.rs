//! The monitor over a real UNIX socket, driven by a raw client, with a mock
//! VM behind it.

mod common;

use common::{Fixture, Raw, WAIT};
use rvirt_qmp::{Event, MonitorConfig, RunState, ShutdownCause};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn desc(reply: &Value) -> &str {
    reply["error"]["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
}

#[test]
fn greeting_then_negotiation() {
    let fx = Fixture::new(RunState::Prelaunch);
    let mut c = fx.connect();
    let g = c.recv();
    assert_eq!(
        g["QMP"]["version"]["qemu"],
        json!({"major": 7, "minor": 2, "micro": 0})
    );
    assert_eq!(g["QMP"]["capabilities"], json!([]));
    let (r, _) = c.cmd(r#"{"execute": "query-status", "id": 1}"#);
    assert_eq!(r["error"]["class"], "CommandNotFound");
    assert_eq!(
        desc(&r),
        "Expecting capabilities negotiation with 'qmp_capabilities'"
    );
    assert_eq!(r["id"], 1);
    // No events before negotiation.
    fx.bus.post(Event::Stop);
    let (r, ev) = c.cmd(r#"{"execute": "qmp_capabilities", "id": "n"}"#);
    assert!(ev.is_empty());
    assert_eq!(r, json!({"return": {}, "id": "n"}));
    let (r, _) = c.cmd(r#"{"execute": "qmp_capabilities"}"#);
    assert_eq!(r["error"]["class"], "CommandNotFound");
    assert_eq!(
        desc(&r),
        "Capabilities negotiation is already complete, command ignored"
    );
}

#[test]
fn every_query_command() {
    let fx = Fixture::with(
        RunState::Prelaunch,
        |vm| {
            vm.cpus = 2;
            vm.name = Some("vm1".into());
        },
        MonitorConfig::default(),
    );
    let mut c = fx.client();
    let mut q = |cmd: &str| {
        c.cmd(&format!(r#"{{"execute": "{cmd}", "id": "{cmd}"}}"#))
            .0
    };
    let v = q("query-version");
    assert_eq!(v["id"], "query-version");
    assert_eq!(v["return"]["qemu"]["major"], 7);
    assert!(v["return"]["package"]
        .as_str()
        .unwrap()
        .starts_with("rvirt"));
    let names: Vec<String> = q("query-commands")["return"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "qmp_capabilities",
        "query-version",
        "query-commands",
        "query-status",
        "query-name",
        "query-uuid",
        "query-kvm",
        "query-cpus-fast",
        "query-chardev",
        "query-block",
        "query-pci",
        "stop",
        "cont",
        "system_reset",
        "system_powerdown",
        "quit",
        "inject-nmi",
        "human-monitor-command",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(
        q("query-status")["return"],
        json!({"running": false, "singlestep": false, "status": "prelaunch"})
    );
    assert_eq!(q("query-name")["return"], json!({"name": "vm1"}));
    assert_eq!(
        q("query-uuid")["return"],
        json!({"UUID": "00000000-0000-0000-0000-000000000000"})
    );
    assert_eq!(
        q("query-kvm")["return"],
        json!({"enabled": true, "present": true})
    );
    let cpus = q("query-cpus-fast")["return"].clone();
    assert_eq!(cpus.as_array().unwrap().len(), 2);
    assert_eq!(
        cpus[1],
        json!({"cpu-index": 1, "qom-path": "/machine/unattached/device[1]", "thread-id": 1001,
               "props": {"core-id": 1, "socket-id": 0, "thread-id": 0}, "target": "x86_64"})
    );
    assert_eq!(q("query-chardev")["return"][0]["label"], "compat_monitor0");
    assert_eq!(q("query-block")["return"], json!([]));
    assert_eq!(q("query-pci")["return"], json!([]));
}

#[test]
fn run_control_and_events_in_qemu_order() {
    let fx = Fixture::new(RunState::Prelaunch);
    let mut c = fx.client();
    // stop in prelaunch: nothing happens, no event.
    let (r, ev) = c.cmd(r#"{"execute": "stop"}"#);
    assert_eq!((r, ev.len()), (json!({"return": {}}), 0));
    // cont: RESUME comes before the reply, as with QEMU.
    let (r, ev) = c.cmd(r#"{"execute": "cont", "id": 2}"#);
    assert_eq!(r, json!({"return": {}, "id": 2}));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event"], "RESUME");
    assert!(ev[0]["timestamp"]["seconds"].as_i64().unwrap() > 0);
    assert!(ev[0]["timestamp"]["microseconds"].is_i64());
    assert!(ev[0].get("data").is_none());
    assert_eq!(
        c.cmd(r#"{"execute": "query-status"}"#).0["return"]["status"],
        "running"
    );
    let (_, ev) = c.cmd(r#"{"execute": "stop"}"#);
    assert_eq!(ev[0]["event"], "STOP");
    assert_eq!(
        c.cmd(r#"{"execute": "query-status"}"#).0["return"]["running"],
        false
    );
    let (_, ev) = c.cmd(r#"{"execute": "system_reset"}"#);
    assert_eq!(ev[0]["event"], "RESET");
    assert_eq!(
        ev[0]["data"],
        json!({"guest": false, "reason": "host-qmp-system-reset"})
    );
    let (_, ev) = c.cmd(r#"{"execute": "system_powerdown"}"#);
    assert_eq!(ev[0]["event"], "POWERDOWN");
    // A VM that needs a reset refuses cont.
    *fx.vm.state.lock().unwrap() = RunState::Shutdown;
    let (r, ev) = c.cmd(r#"{"execute": "cont"}"#);
    assert_eq!(desc(&r), "Resetting the Virtual Machine is required");
    assert!(ev.is_empty());
    let (r, ev) = c.cmd(r#"{"execute": "quit"}"#);
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(
        ev[0]["data"],
        json!({"guest": false, "reason": "host-qmp-quit"})
    );
    assert_eq!(fx.vm.quits.load(Ordering::SeqCst), 1);
}

#[test]
fn guest_events_reach_clients() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    fx.bus.post(Event::shutdown(ShutdownCause::GuestShutdown));
    fx.bus.post(Event::reset(ShutdownCause::GuestReset));
    fx.bus.post(Event::GuestPanicked {
        action: rvirt_qmp::GuestPanicAction::Pause,
        info: None,
    });
    let a = c.recv();
    assert_eq!(
        (a["event"].as_str(), &a["data"]),
        (
            Some("SHUTDOWN"),
            &json!({"guest": true, "reason": "guest-shutdown"})
        )
    );
    let b = c.recv();
    assert_eq!(
        (b["event"].as_str(), &b["data"]),
        (
            Some("RESET"),
            &json!({"guest": true, "reason": "guest-reset"})
        )
    );
    let p = c.recv();
    assert_eq!(
        (p["event"].as_str(), &p["data"]),
        (Some("GUEST_PANICKED"), &json!({"action": "pause"}))
    );
}

#[test]
fn human_monitor_commands() {
    let fx = Fixture::with(
        RunState::Prelaunch,
        |vm| vm.cpus = 2,
        MonitorConfig::default(),
    );
    let mut c = fx.client();
    let mut hmp = |line: &str, extra: &str| {
        c.cmd(&format!(
            r#"{{"execute": "human-monitor-command", "arguments": {{"command-line": "{line}"{extra}}}}}"#
        ))
        .0
    };
    assert_eq!(
        hmp("info status", "")["return"],
        "VM status: paused (prelaunch)\r\n"
    );
    assert_eq!(
        hmp("info cpus", "")["return"],
        "* CPU #0: thread_id=1000\r\n  CPU #1: thread_id=1001\r\n"
    );
    assert_eq!(
        hmp("info cpus", r#", "cpu-index": 1"#)["return"],
        "  CPU #0: thread_id=1000\r\n* CPU #1: thread_id=1001\r\n"
    );
    assert_eq!(
        desc(&hmp("info cpus", r#", "cpu-index": 5"#)),
        "Parameter 'cpu-index' expects a CPU number"
    );
    let v = hmp("info version", "");
    assert_eq!(
        v["return"],
        format!("7.2.0rvirt {}\r\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        hmp("info mtree", "")["return"],
        "unknown command: 'info mtree'\r\n"
    );
    assert_eq!(hmp("cont", "")["return"], "");
    assert_eq!(hmp("info status", "")["return"], "VM status: running\r\n");
    assert_eq!(hmp("stop", "")["return"], "");
    assert_eq!(hmp("info status", "")["return"], "VM status: paused\r\n");
    *fx.vm.state.lock().unwrap() = RunState::Shutdown;
    assert_eq!(
        hmp("info status", "")["return"],
        "VM status: paused (shutdown)\r\n"
    );
    assert_eq!(
        hmp("c", "")["return"],
        "Error: Resetting the Virtual Machine is required\r\n"
    );
}

#[test]
fn bad_input_gets_qemu_errors_and_the_connection_stays() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    let cases: &[(&str, &str)] = &[
        ("{\"execute\": }", "JSON parse error, expecting value"),
        ("[1, 2]", "QMP input must be a JSON object"),
        (
            "{\"execute\": \"nope\"}",
            "The command nope has not been found",
        ),
        (
            "{\"execute\": \"stop\", \"arguments\": {\"x\": 1}}",
            "Parameter 'x' is unexpected",
        ),
        (
            "{\"execute\": \"human-monitor-command\"}",
            "Parameter 'command-line' is missing",
        ),
        (
            "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": true}}",
            "Invalid parameter type for 'command-line', expected: string",
        ),
        (
            "{\"execute\": \"stop\", \"arguments\": 1}",
            "QMP input member 'arguments' must be an object",
        ),
        ("{\"id\": 1}", "QMP input lacks member 'execute'"),
        (
            "{\"execute\": true}",
            "QMP input member 'execute' must be a string",
        ),
        (
            "{\"execute\": \"stop\", \"x\": 1}",
            "QMP input member 'x' is unexpected",
        ),
        (
            "{'execute': nul}",
            "JSON parse error, invalid keyword 'nul'",
        ),
    ];
    for (input, want) in cases {
        let (r, _) = c.cmd(input);
        assert_eq!(desc(&r), *want, "input {input}");
    }
    let (r, _) = c.cmd(r#"{"execute": "query-status"}"#);
    assert_eq!(r["return"]["status"], "running");
}

#[test]
fn framing_across_writes_and_lines() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    let text = b"{\"execute\":\n\"query-kvm\", \"id\": 1}{\"execute\": \"query-name\", \"id\": 2}";
    for b in text.iter() {
        c.send(&[*b]);
    }
    assert_eq!(c.recv()["id"], 1);
    assert_eq!(c.recv()["id"], 2);
}

#[test]
fn oversized_message_closes_the_connection_only() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    let mut big = b"{\"execute\": \"query-status\", \"id\": \"".to_vec();
    big.resize(big.len() + (1 << 20) + 10, b'a');
    // The server may close while we still write; that is the point.
    let _ = c.stream.write_all(&big);
    assert!(
        c.closed(),
        "connection stayed open after a message over 1 MiB"
    );
    let mut d = fx.client();
    assert_eq!(
        d.cmd(r#"{"execute": "query-status"}"#).0["return"]["status"],
        "running"
    );
}

#[test]
fn disconnect_mid_message_is_harmless() {
    let fx = Fixture::new(RunState::Running);
    {
        let mut c = fx.client();
        c.send(b"{\"execute\": \"query-sta");
    }
    let mut d = fx.client();
    assert_eq!(
        d.cmd(r#"{"execute": "query-status"}"#).0["return"]["running"],
        true
    );
}

#[test]
fn one_client_at_a_time_then_the_next() {
    let fx = Fixture::new(RunState::Running);
    let first = fx.client();
    let mut second = fx.connect();
    // Connected (in the backlog) but not served while the first is.
    assert!(second.try_recv(Duration::from_millis(300)).is_none());
    drop(first);
    let g = second.recv();
    assert!(g.get("QMP").is_some());
}

#[test]
fn commands_sent_before_close_still_run() {
    let fx = Fixture::new(RunState::Running);
    let mut c = fx.connect();
    c.send(b"{\"execute\": \"qmp_capabilities\"}{\"execute\": \"stop\"}");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    while let Some(m) = c.try_recv(WAIT) {
        got.push(m);
    }
    assert_eq!(got.len(), 4, "{got:?}"); // greeting, return, STOP, return
    assert_eq!(got[2]["event"], "STOP");
    assert_eq!(fx.vm.status(), RunState::Paused);
}

use rvirt_qmp::MonitorBackend;

#[test]
fn stalled_reader_does_not_block_the_vmm_or_other_clients() {
    let mut fx = Fixture::new(RunState::Running);
    let other = fx.dir.path().join("other.sock");
    fx.server
        .as_mut()
        .unwrap()
        .listen_unix(&other, "mon1")
        .unwrap();
    let _stalled = fx.client();
    let mut live = Raw::connect(&other);
    live.recv();
    live.send(b"{\"execute\": \"qmp_capabilities\"}");
    live.recv();
    let reader = std::thread::spawn(move || {
        let mut last = (0, 0);
        for seen in 0..10_000 {
            let m = live.recv();
            let ts = (
                m["timestamp"]["seconds"].as_i64().unwrap(),
                m["timestamp"]["microseconds"].as_i64().unwrap(),
            );
            assert!(ts >= last, "timestamps go backwards");
            last = ts;
            let want = if seen % 2 == 0 { "STOP" } else { "RESUME" };
            assert_eq!(m["event"], want, "event {seen} out of order");
        }
        let (r, _) = live.cmd(r#"{"execute": "query-status"}"#);
        assert_eq!(r["return"]["status"], "running");
    });
    let start = Instant::now();
    for i in 0..10_000 {
        fx.bus.post(if i % 2 == 0 {
            Event::Stop
        } else {
            Event::Resume
        });
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "posting blocked: {:?}",
        start.elapsed()
    );
    reader.join().unwrap();
}

#[test]
fn client_that_never_reads_is_dropped_when_its_queue_overflows() {
    let config = MonitorConfig {
        max_outbox: 16 * 1024,
        ..MonitorConfig::default()
    };
    let fx = Fixture::with(RunState::Running, |_| {}, config);
    let mut stalled = fx.client();
    let start = Instant::now();
    for i in 0..10_000 {
        fx.bus.post(if i % 2 == 0 {
            Event::Stop
        } else {
            Event::Resume
        });
    }
    assert!(start.elapsed() < Duration::from_secs(2), "posting blocked");
    assert!(stalled.closed(), "a client that never reads was kept");
    // Its monitor then serves the next client.
    let mut next = fx.client();
    assert_eq!(
        next.cmd(r#"{"execute": "query-kvm"}"#).0["return"]["enabled"],
        true
    );
    assert_eq!(fx.bus.subscribers(), 1);
}

#[test]
fn client_flooding_commands_without_reading_is_throttled_not_fatal() {
    let fx = Fixture::new(RunState::Running);
    let mut flood = UnixStream::connect(&fx.path).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let cmd = b"{\"execute\": \"qmp_capabilities\"}".to_vec();
    flood.write_all(&cmd).unwrap();
    let line = b"{\"execute\": \"query-commands\"}\n".repeat(1000);
    // The server stops reading once replies pile up, so our writes end
    // up timing out instead of the server queueing without bound.
    let mut blocked = false;
    for _ in 0..200 {
        if flood.write_all(&line).is_err() {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "server kept reading while nobody read its replies");
    // Events still get posted without blocking.
    let start = Instant::now();
    for _ in 0..1000 {
        fx.bus.post(Event::Powerdown);
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(flood);
    let mut next = fx.client();
    assert_eq!(
        next.cmd(r#"{"execute": "query-kvm"}"#).0["return"]["present"],
        true
    );
}

#[test]
fn socket_file_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A stale socket from a dead process is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let bus = rvirt_qmp::EventBus::new();
    let vm = std::sync::Arc::new(common::MockVm::new(bus.clone(), RunState::Running));
    let mut server = rvirt_qmp::MonitorServer::new(vm.clone(), bus.clone()).unwrap();
    server.listen_unix(&path, "m").unwrap();
    assert_eq!(server.socket_paths(), vec![path.clone()]);
    let mut c = Raw::connect(&path);
    assert!(c.recv().get("QMP").is_some());
    // A regular file is never deleted.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        server.listen_unix(&file, "n"),
        Err(rvirt_qmp::ServerError::NotASocket(_))
    ));
    assert!(file.exists());
    server.shutdown();
    assert!(!path.exists(), "socket file left behind");
    assert!(c.closed());
}

#[test]
fn quit_reply_is_flushed_by_shutdown() {
    let mut fx = Fixture::new(RunState::Running);
    let mut c = fx.client();
    c.send(b"{\"execute\": \"quit\", \"id\": \"q\"}");
    let deadline = Instant::now() + WAIT;
    while fx.vm.quits.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // What rvirt-vmm's main thread does on quit.
    fx.server.take().unwrap().shutdown();
    let ev = c.recv();
    assert_eq!(ev["event"], "SHUTDOWN");
    assert_eq!(c.recv(), json!({"return": {}, "id": "q"}));
    assert!(c.closed());
    assert!(!fx.path.exists());
}

#[test]
fn monitor_over_a_descriptor_pair() {
    let bus = rvirt_qmp::EventBus::new();
    let vm = std::sync::Arc::new(common::MockVm::new(bus.clone(), RunState::Paused));
    let mut server = rvirt_qmp::MonitorServer::new(vm, bus).unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let input: std::os::fd::OwnedFd = theirs.try_clone().unwrap().into();
    server.serve_fds(input, theirs.into(), "pair").unwrap();
    let mut c = Raw::from_stream(ours);
    assert!(c.recv().get("QMP").is_some());
    c.send(b"{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-status\"}");
    c.recv();
    assert_eq!(c.recv()["return"]["status"], "paused");
    server.shutdown();
}

#[test]
fn wait_on_blocks_until_the_first_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wait.sock");
    let bus = rvirt_qmp::EventBus::new();
    let vm = std::sync::Arc::new(common::MockVm::new(bus.clone(), RunState::Prelaunch));
    let p = path.clone();
    let connector = std::thread::spawn(move || {
        // The file appears at bind, a moment before listen: wait for the
        // listener, not the file.
        rvirt_testkit::wait_listening(&p, WAIT);
        let mut c = Raw::connect(&p);
        assert!(c.recv().get("QMP").is_some());
        c
    });
    let mut server = rvirt_qmp::MonitorServer::new(vm, bus).unwrap();
    // Returns only once the connector is attached (or never, if it fails:
    // hence the limit).
    let listen = path.clone();
    let server = rvirt_testkit::within("the first client", WAIT * 2, move || {
        server.listen_unix_and_wait(&listen, "wait").unwrap();
        server
    });
    let mut c = connector.join().unwrap();
    c.send(b"{\"execute\": \"qmp_capabilities\"}");
    assert_eq!(c.recv(), json!({"return": {}}));
    drop(c);
    let mut next = Raw::connect(&path);
    assert!(next.recv().get("QMP").is_some());
    server.shutdown();
    assert!(!path.exists());
}
