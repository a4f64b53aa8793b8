//! `virsh console` through rvirtd: the guest's serial pty as a stream,
//! Ctrl+] to leave, one console at a time, `--force` to take it over.
//! virsh needs a terminal, which `script` (util-linux) provides; its
//! typescript file is where the test reads what virsh showed.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{domain_xml, have_virsh, virtio_console_alias, with_virtio_console, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, wait_for, Spawned};

/// `virsh console ARGS` running on a pty; killed when dropped.
struct Console {
    child: Spawned,
    typescript: PathBuf,
    /// The daemon's state and log, for failure reports.
    daemon: Box<dyn Fn() -> String>,
}

impl Console {
    fn open(d: &Rvirtd, args: &str, tag: &str) -> Self {
        let typescript = d.root().join(format!("typescript-{tag}"));
        let child = Spawned::start(
            Command::new("script")
                .args(["-qfec", &format!("virsh -c '{}' console {args}", d.uri())])
                .arg(&typescript)
                .stdin(Stdio::piped()),
        )
        .on_fail(d.reporter());
        Console {
            child,
            typescript,
            daemon: Box::new(d.reporter()),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.typescript).unwrap_or_default()).into_owned()
    }

    fn wait_for(&self, needle: &str) {
        poll(
            &format!("'{needle}' on the console"),
            Duration::from_secs(15),
            || {
                let text = self.text();
                if text.contains(needle) {
                    Ok(())
                } else {
                    Err(format!(
                        "virsh showed:\n{text}\n{}\n{}",
                        self.child.describe(),
                        (self.daemon)()
                    ))
                }
            },
        );
    }

    /// Types Ctrl+] (or nothing, when virsh already ended) and returns
    /// virsh's exit status.
    fn close(mut self) -> bool {
        let _ = self.child.stdin().write_all(b"\x1d");
        let _ = self.child.stdin().flush();
        self.child.close_stdin();
        self.child.wait(Duration::from_secs(10)).success()
    }
}

#[test]
fn virsh_console_shows_the_guest() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let xml = domain_xml("con", Guest::Counter).replace("type='stdio'", "type='pty'");
    let f = d.xml_file("con.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "con"]);
    // The live definition names the pty, as libvirt's does.
    let live = d.ok(&["dumpxml", "con"]);
    assert!(
        live.contains("<serial type='pty'>\n      <source path='/dev/pts/"),
        "{live}"
    );
    assert!(!d
        .ok(&["dumpxml", "--inactive", "con"])
        .contains("/dev/pts/"));

    let c = Console::open(&d, "con", "1");
    c.wait_for("Connected to domain 'con'");
    c.wait_for("COUNT ");
    assert!(c.close(), "virsh console exits 0 after Ctrl+]");
    // The console was released: a second one works, the VM still runs.
    let c = Console::open(&d, "con", "2");
    c.wait_for("COUNT ");
    // While it holds the console, a plain open is refused and --force
    // takes it over.
    let refused = Console::open(&d, "con", "3");
    refused.wait_for("Active console session exists for this domain");
    assert!(!refused.close());
    let forced = Console::open(&d, "--force con", "4");
    forced.wait_for("COUNT ");
    c.wait_for("console has been forcibly closed by another client");
    assert!(!c.close());
    assert!(forced.close());
    assert_eq!(d.state("con"), "running (booted)");
    d.ok(&["destroy", "con"]);

    // A serial that is not a pty cannot be a console.
    let f = d.xml_file("s.xml", &domain_xml("nopty", Guest::Counter));
    d.ok(&["define", &f]);
    d.ok(&["start", "nopty"]);
    let c = Console::open(&d, "nopty", "5");
    c.wait_for("character device serial0 is not using a PTY");
    assert!(!c.close());
    d.ok(&["destroy", "nopty"]);
}

/// A virtio console (`<console type='pty'><target type='virtio'/>`) is
/// reachable by its alias, as with libvirt: a line typed into `virsh
/// console` reaches the guest's hvc port and its echo comes back.
#[test]
fn virsh_console_reaches_a_virtio_console() {
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    let xml = with_virtio_console(&domain_xml("vcon", Guest::Virtio));
    let f = d.xml_file("vcon.xml", &xml);
    d.ok(&["define", &f]);
    d.ok(&["start", "vcon"]);
    let live = d.ok(&["dumpxml", "vcon"]);
    let alias = virtio_console_alias(&live);
    assert!(alias.starts_with("console"), "{alias}");
    let mut c = Console::open(&d, &format!("vcon {alias}"), "v");
    c.wait_for("Connected to domain 'vcon'");
    // The guest waits (bounded) for a line on its console after
    // CONSOLE_READY on the serial port, which goes to the log.
    wait_for("CONSOLE_READY in the log", Duration::from_secs(20), || {
        d.log("vcon").contains("CONSOLE_READY")
    });
    {
        let stdin = c.child.stdin();
        stdin.write_all(b"through virsh console\n").unwrap();
        stdin.flush().unwrap();
    }
    c.wait_for("CONSOLE_ECHO through virsh console");
    assert!(c.close());
    wait_for("the echo in the log", Duration::from_secs(20), || {
        d.log("vcon").contains("CONSOLE_RX through virsh console")
    });
    // Its last device done, the guest powers off.
    d.wait_state("vcon", "shut off (shutdown)");
}
