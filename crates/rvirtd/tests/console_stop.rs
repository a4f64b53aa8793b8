//! A console stream always ends when its domain stops, whichever way it
//! stops and wherever the stream is in its life: libvirt-python opens a
//! console (the serial pty that rvirtd also logs, or a virtio console it
//! pumps alone) and the domain is destroyed, shut down, loses its VMM to a
//! SIGKILL, or rvirtd itself is killed, before the open's reply, right
//! after it, or while output flows. Every round the client reads until the
//! stream's end, under a deadline this harness enforces: a stream that
//! never ends fails the round with the client's stack, the transcript and
//! the daemon's log, instead of hanging the run.
//!
//! Busy threads load both cores meanwhile, so rvirtd's threads (the pty
//! reader, the VMM's reaper, the client's writer) run late and in changing
//! orders: on an idle machine the pty reader nearly always wins, and the
//! race this test was written for (the stop marking the stream ended
//! without sending its end) showed only under load.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{domain_xml, have_virsh, virtio_console_alias, with_virtio_console, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::Spawned;

/// Rounds of each kind of stop; four kinds, two console kinds, three
/// moments.
const ROUNDS: usize = 48;

/// How long one round may take, start to end of stream.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

const CLIENT: &str = r#"
import faulthandler, os, random, signal, sys, threading, time
import libvirt

uri, root, virtio_alias, rounds, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
libvirt.registerErrorHandler(lambda *a: None, None)

def say(*words):
    print(*words, flush=True)

def connect():
    return libvirt.open(uri)

def vmm_pid():
    with open(os.path.join(root, "run/rvirt/qemu/chat/vmm.pid")) as f:
        return int(f.read().strip())

def wait_state(dom, want, limit=20):
    deadline = time.time() + limit
    while dom.state()[0] != want:
        assert time.time() < deadline, ("state", dom.state(), "want", want)
        time.sleep(0.01)

def stop(conn, how):
    dom = conn.lookupByName("chat")
    if how == "destroy":
        dom.destroy()
    elif how == "shutdown":
        dom.shutdown()
    elif how == "crash":
        os.kill(vmm_pid(), signal.SIGKILL)
    elif how == "restart":
        # The harness kills rvirtd with SIGKILL and starts it again.
        say("KILL_DAEMON")
        assert sys.stdin.readline().strip() == "RESTARTED"

def settle(how):
    """After a round: a fresh connection if the daemon was restarted (the
    VM survived it, so it is destroyed), and the domain shut off."""
    global conn
    if how == "restart":
        conn = connect()
        conn.lookupByName("chat").destroy()
    wait_state(conn.lookupByName("chat"), libvirt.VIR_DOMAIN_SHUTOFF)

conn = connect()
stats = {}
for i in range(rounds):
    how = ["destroy", "shutdown", "crash", "restart"][i % 4]
    dev = ["serial0", virtio_alias][(i // 4) % 2]
    when = ["racing-open", "after-open", "while-output"][(i // 8) % 3]
    # A client stuck in recv() past this dumps its stack and exits: the
    # harness sees the dump and fails the round.
    faulthandler.dump_traceback_later(20, exit=True)
    dom = conn.lookupByName("chat")
    if not dom.isActive():
        dom.create()
    wait_state(dom, libvirt.VIR_DOMAIN_RUNNING)
    say("ROUND", i, how, dev, when)
    st = conn.newStream(0)
    stopper = None
    if when == "racing-open":
        # Stopped from a second connection while the open is on its way.
        delay = rnd.uniform(0, 0.02)
        def late_stop():
            time.sleep(delay)
            c = connect() if how != "restart" else conn
            stop(c, how)
        stopper = threading.Thread(target=late_stop)
        stopper.start()
    try:
        dom.openConsole(dev, st, 0)
    except libvirt.libvirtError as e:
        # The domain stopped before the console could open: no stream.
        assert when == "racing-open", e
        stopper.join()
        say("ENDED", i, "refused")
        stats["refused"] = stats.get("refused", 0) + 1
        settle(how)
        continue
    if when == "after-open":
        stop(conn, how)
    elif when == "while-output":
        if dev == "serial0":
            got = b""
            while b"CHAT" not in got:
                chunk = st.recv(4096)
                assert isinstance(chunk, bytes) and chunk, chunk
                got += chunk
        else:
            time.sleep(rnd.uniform(0, 0.05))
        stop(conn, how)
    ending = None
    try:
        while True:
            chunk = st.recv(65536)
            if chunk == b"":
                ending = "eof"
                break
            assert isinstance(chunk, bytes), chunk
    except libvirt.libvirtError as e:
        ending = "error"
    if stopper:
        stopper.join()
    if how == "restart":
        # The connection died with the daemon: that is how the stream ends.
        assert ending == "error", ending
    else:
        assert ending == "eof", (how, ending)
        try:
            st.finish()
        except libvirt.libvirtError:
            pass
    stats[ending] = stats.get(ending, 0) + 1
    say("ENDED", i, ending)
    settle(how)
faulthandler.cancel_dump_traceback_later()
say("OK", stats)
"#;

/// Threads that spin until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn console_streams_end_whenever_the_domain_stops() {
    if !have_virsh() {
        return;
    }
    let python = "/usr/bin/python3";
    let have_libvirt = rvirt_testkit::try_run(
        Command::new(python).args(["-c", "import libvirt"]),
        Duration::from_secs(30),
    )
    .is_ok_and(|o| o.status.success());
    if !have_libvirt {
        assert!(
            std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_none(),
            "python3-libvirt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("python3-libvirt not installed: test skipped");
        return;
    }
    let mut d = Rvirtd::start();
    let xml = with_virtio_console(&domain_xml("chat", Guest::Chatter))
        .replace("type='stdio'", "type='pty'");
    let f = d.xml_file("chat.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "chat"]);
    let live = d.ok(&["dumpxml", "chat"]);
    let alias = virtio_console_alias(&live);
    d.ok(&["destroy", "chat"]);
    let script = d.xml_file("console_stop.py", CLIENT);
    let _load = Load::start(3);
    let mut client = Spawned::start(
        Command::new(python)
            .arg(&script)
            .arg(d.uri())
            .arg(d.root())
            .arg(&alias)
            .arg(ROUNDS.to_string())
            .arg("7")
            .stdin(Stdio::piped()),
    );
    let mut transcript = String::new();
    let mut ended = 0;
    loop {
        let Some(line) = client.line(ROUND_LIMIT) else {
            let status = client.wait(Duration::from_secs(5));
            panic!(
                "the client ended ({status}) after {ended} rounds:\n{transcript}\n{}\ndaemon: {}",
                String::from_utf8_lossy(&client.stderr()),
                d.daemon_log_tail()
            );
        };
        transcript.push_str(&line);
        if line.starts_with("KILL_DAEMON") {
            d.kill9();
            d.spawn();
            writeln!(client.stdin(), "RESTARTED").expect("write to the client");
            client.stdin().flush().expect("flush");
        } else if line.starts_with("ENDED") {
            ended += 1;
        } else if line.starts_with("OK") {
            break;
        }
    }
    let status = client.wait(Duration::from_secs(10));
    assert!(
        status.success() && ended == ROUNDS,
        "{status}, {ended} rounds:\n{transcript}\n{}",
        String::from_utf8_lossy(&client.stderr())
    );
    eprint!("{transcript}");
}
