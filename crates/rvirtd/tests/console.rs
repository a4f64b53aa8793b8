//! `virsh console` through rvirtd: the guest's serial pty as a stream,
//! Ctrl+] to leave, one console at a time, `--force` to take it over.
//! virsh needs a terminal, which `script` (util-linux) provides.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{domain_xml, have_virsh, Rvirtd};
use rvirt_test_guests::Guest;

/// Runs `virsh console ARGS` on a pty for about `secs` seconds, then
/// types Ctrl+].
fn console(d: &Rvirtd, args: &str, secs: u64) -> Output {
    let mut child = Command::new("script")
        .args([
            "-qfec",
            &format!("virsh -c '{}' console {args}", d.uri()),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    std::thread::sleep(Duration::from_secs(secs));
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"\x1d");
    let _ = stdin.flush();
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    child.wait_with_output().unwrap()
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

    let out = console(&d, "con", 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Connected to domain 'con'"), "{text}");
    assert!(text.contains("COUNT "), "{text}");
    // The console was released: a second one works, the VM still runs.
    let again = console(&d, "con", 1);
    assert!(again.status.success());
    assert_eq!(d.state("con"), "running (booted)");

    // While one client holds the console, --force takes it over.
    let holder = std::thread::spawn({
        let uri = d.uri();
        move || {
            Command::new("script")
                .args([
                    "-qfec",
                    &format!("timeout 4 virsh -c '{uri}' console con"),
                    "/dev/null",
                ])
                .stdin(Stdio::piped())
                .output()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let forced = console(&d, "--force con", 1);
    assert!(forced.status.success());
    let held = holder.join().unwrap();
    let held_text = String::from_utf8_lossy(&held.stdout);
    assert!(
        held_text.contains("console has been forcibly closed by another client"),
        "{held_text}"
    );
    d.ok(&["destroy", "con"]);

    // A serial that is not a pty cannot be a console.
    let f = d.xml_file("s.xml", &domain_xml("nopty", Guest::Counter));
    d.ok(&["define", &f]);
    d.ok(&["start", "nopty"]);
    let out = console(&d, "nopty", 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("character device serial0 is not using a PTY"),
        "{text}"
    );
    d.ok(&["destroy", "nopty"]);
}
