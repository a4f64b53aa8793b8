//! Running rvirsh and the real virsh side by side against libvirtd's test
//! driver (`test+unix:///default?socket=...`).
//!
//! libvirtd keeps `test:///default` alive only while a connection to it is
//! open, so each test holds one open for its whole run. The driver's state
//! is shared by all clients: tests serialise on a lock (under cargo
//! nextest, which runs each in a process of its own, on .config/nextest.toml's
//! test group) and use domain names of their own.
//!
//! When virsh or libvirtd is missing the tests skip, unless
//! `RVIRT_REQUIRE_REFERENCE` is set, in which case they fail.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rvirt_remote::Client;
use rvirt_testkit::{run, try_run, SocketDeadline};

static LOCK: Mutex<()> = Mutex::new(());

/// How long one virsh or rvirsh command may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The socket of libvirtd (`RVIRT_LIBVIRT_SOCK` overrides it).
pub fn socket() -> PathBuf {
    std::env::var_os("RVIRT_LIBVIRT_SOCK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/libvirt/libvirt-sock"))
}

/// The URI both tools are given.
pub fn uri() -> String {
    format!("test+unix:///default?socket={}", socket().display())
}

/// The reference setup, held for one test.
pub struct Reference {
    _holder: Client,
    _guard: MutexGuard<'static, ()>,
}

/// One command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code().unwrap_or(-1),
        }
    }
}

fn unavailable(why: String) -> Option<Reference> {
    if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("reference stack required (RVIRT_REQUIRE_REFERENCE is set) but {why}");
    }
    eprintln!("skipping: {why} (set RVIRT_REQUIRE_REFERENCE to make this fail)");
    None
}

/// Takes the lock and opens the holding connection; `None` (skip) when
/// virsh or libvirtd is not there and the reference is not required.
pub fn reference() -> Option<Reference> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match try_run(Command::new("virsh").arg("--version"), LIMIT) {
        Ok(o) if o.status.success() => {}
        Ok(o) => return unavailable(format!("`virsh --version` failed: {:?}", o.status)),
        Err(e) => return unavailable(format!("virsh is not installed ({e})")),
    }
    let opened = UnixStream::connect(socket())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            // Only the handshake can block: the holder then sits idle.
            let deadline = SocketDeadline::arm(&s, "libvirtd's handshake", LIMIT);
            let c = Client::handshake(s, "test:///default").map_err(|e| e.to_string());
            drop(deadline);
            c
        });
    let holder = match opened {
        Ok(c) => c,
        Err(e) => {
            return unavailable(format!(
                "libvirtd does not answer on {} ({e})",
                socket().display()
            ))
        }
    };
    Some(Reference {
        _holder: holder,
        _guard: guard,
    })
}

fn run_tool(program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    run(&mut tool(program, args, env), LIMIT).into()
}

fn tool(program: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program);
    c.env("LC_ALL", "C")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI")
        .stdin(Stdio::null());
    for (k, v) in env {
        // An empty value stands for "unset" (virsh treats an empty
        // VISUAL as an editor named '').
        if v.is_empty() {
            c.env_remove(k);
        } else {
            c.env(k, v);
        }
    }
    c.args(args);
    c
}

/// The rvirsh binary under test.
pub fn rvirsh_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rvirsh")
}

/// Runs virsh with `-c URI` and `args`.
pub fn virsh(args: &[&str]) -> Run {
    let u = uri();
    let mut a = vec!["-c", u.as_str()];
    a.extend_from_slice(args);
    run_tool("virsh", &a, &[])
}

/// Runs rvirsh with `-c URI` and `args`.
pub fn rvirsh(args: &[&str]) -> Run {
    let u = uri();
    let mut a = vec!["-c", u.as_str()];
    a.extend_from_slice(args);
    run_tool(rvirsh_bin(), &a, &[])
}

/// Runs a tool with exactly these arguments and extra environment.
pub fn raw(program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_tool(program, args, env)
}

/// Blanks what legitimately differs between two runs: CPU times (the test
/// driver derives them from the clock) and the running ids of `names`
/// (every start takes a new id).
pub fn normalize(s: &str, names: &[&str]) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let l = line.trim_end_matches('\n');
        let fixed = if l.starts_with("CPU time:") {
            "CPU time:       <t>".to_string()
        } else if l.starts_with("Id:") && !l.ends_with('-') {
            "Id:             <id>".to_string()
        } else if names.iter().any(|n| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 2 && cols[1] == *n && cols[0].parse::<u32>().is_ok()
        }) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let id_len = cols[0].len();
            format!(" <id>{}", &l[1 + id_len..])
        } else {
            blank_temp_names(l)
        };
        out.push_str(&fixed);
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `virshXXXXXX.xml`: the editor's temporary file, named at random.
fn blank_temp_names(l: &str) -> String {
    let mut out = String::new();
    let mut rest = l;
    while let Some(i) = rest.find("virsh") {
        let after = &rest[i + 5..];
        let random = after.len() >= 10
            && after.as_bytes()[..6].iter().all(u8::is_ascii_alphanumeric)
            && after[6..].starts_with(".xml");
        out.push_str(&rest[..i + 5]);
        if random {
            out.push_str("XXXXXX");
            rest = &after[6..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Asserts two runs print the same, after [`normalize`].
#[track_caller]
pub fn assert_same(what: &str, v: &Run, r: &Run, names: &[&str]) {
    let nv = (
        normalize(&v.stdout, names),
        normalize(&v.stderr, names),
        v.code,
    );
    let nr = (
        normalize(&r.stdout, names),
        normalize(&r.stderr, names),
        r.code,
    );
    assert_eq!(
        nv, nr,
        "`{what}`: virsh (left) and rvirsh (right) differ (stdout, stderr, exit code)"
    );
}

/// Drives `probe` (events of the domain `probe_name`) until every event
/// loop in `loops` has printed one. A loop prints nothing before its
/// first event, and one started a moment ago may not have registered its
/// callback yet (seconds, on a loaded machine): events sent sooner would
/// be missed by one tool and not the other. Drop the probe's lines with
/// [`without_probe`] before comparing.
pub fn until_loops_listen(
    loops: &[&rvirt_testkit::Spawned],
    probe_name: &str,
    mut probe: impl FnMut(),
) {
    let needle = format!(" for domain '{probe_name}'");
    rvirt_testkit::poll(
        "every event loop to print the probe's events",
        LIMIT,
        || {
            probe();
            let deaf: Vec<String> = loops
                .iter()
                .filter(|l| !l.stdout_text().contains(&needle))
                .map(|l| l.describe())
                .collect();
            if deaf.is_empty() {
                Ok(())
            } else {
                Err(deaf.join("\n"))
            }
        },
    );
}

/// An event loop's run without the lines of the probe domain and its
/// `events received: N` line (how many probe rounds a loop saw is not
/// the same in both), after checking that N counts the event lines.
pub fn without_probe(r: &Run, probe_name: &str) -> Run {
    let events = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("event '"))
        .count();
    assert!(
        r.stdout.contains(&format!("events received: {events}\n")),
        "{events} events, not counted so: {}",
        r.stdout
    );
    let needle = format!(" for domain '{probe_name}'");
    Run {
        stdout: r
            .stdout
            .split_inclusive('\n')
            .filter(|l| !l.contains(&needle) && !l.starts_with("events received: "))
            .collect(),
        ..r.clone()
    }
}

/// Runs the same arguments through both tools and compares them.
#[track_caller]
pub fn same(args: &[&str], names: &[&str]) -> Run {
    let v = virsh(args);
    let r = rvirsh(args);
    assert_same(&args.join(" "), &v, &r, names);
    r
}

/// A domain XML for the test driver named `name` with `uuid`.
pub fn domain_xml(name: &str, uuid: &str) -> String {
    format!(
        r#"<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='KiB'>131072</memory>
  <currentMemory unit='KiB'>131072</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/{name}-root.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:ab:cd:ef'/>
    </interface>
  </devices>
</domain>
"#
    )
}

/// Destroys and undefines the named domains when dropped, so that a
/// failed test leaves nothing behind in the shared test driver.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Reports instead of panicking: this may run while a failed test
        // unwinds.
        let u = uri();
        for n in &self.0 {
            for what in ["destroy", "undefine"] {
                let args = ["-c", u.as_str(), what, n];
                if let Err(why) = try_run(&mut tool("virsh", &args, &[]), LIMIT) {
                    eprintln!("clean-up of {n}: {why}");
                }
            }
        }
    }
}

/// A name and UUID of this process's own, so that parallel runs on a
/// shared libvirtd do not meet.
pub fn unique(tag: &str) -> (String, String) {
    let pid = std::process::id();
    (
        format!("rvsh-{tag}-{pid}"),
        format!("7e57{:04x}-0000-4000-8000-{:012x}", tag.len(), pid),
    )
}
