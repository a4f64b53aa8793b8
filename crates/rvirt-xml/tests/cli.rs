//! Runs the real `rvirt-xml` binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rvirt_testkit::Spawned;

const GOOD: &str = "<domain type='kvm'>
  <name>cli</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='microvm'>hvm</type><kernel>/k</kernel></os>
  <devices>
    <disk type='file' device='disk'><source file='/d.raw'/><target dev='vda' bus='virtio'/></disk>
    <serial type='pty'/>
    <graphics type='vnc'/>
    <sound model='ich9'/>
  </devices>
</domain>
";

const BAD: &str = "<domain type='kvm'>
  <name>a/b</name>
  <memory unit='parsecs'>128</memory>
  <os><type>hvm</type></os>
</domain>
";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rvirt-xml"))
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Spawned::start(bin().args(args).stdin(Stdio::piped()));
    if let Some(s) = stdin {
        child.stdin().write_all(s.as_bytes()).unwrap();
    }
    child.close_stdin();
    child.output(Duration::from_secs(30))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p: PathBuf = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn validate_accepts_good_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.xml", GOOD);
    let out = run(&["validate", &good], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{good}: valid\n"));
}

#[test]
fn validate_reports_each_problem_as_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.xml", GOOD);
    let bad = write(&dir, "bad.xml", BAD);
    let out = run(&["validate", &good, &bad], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        format!("{bad}:2: <name>: name 'a/b' must not contain '/'")
    );
    assert_eq!(
        lines[1],
        format!("{bad}:3: <memory> attribute 'unit': unknown unit 'parsecs'")
    );
    assert!(text(&out.stdout).contains("good.xml: valid"));
}

#[test]
fn malformed_xml_gives_line_and_column() {
    let out = run(
        &["validate", "-"],
        Some("<domain>\n  <name>x</nam>\n</domain>"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("-:2: column "), "{err}");
    assert!(err.contains("malformed XML"), "{err}");
}

#[test]
fn missing_file_fails() {
    let out = run(&["validate", "/nonexistent/x.xml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["validate"], None).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"], None).status.code(), Some(2));
}

#[test]
fn format_reads_stdin_and_fills_in() {
    let out = run(&["format", "-"], Some(GOOD));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let xml = text(&out.stdout);
    assert!(
        xml.starts_with("<domain type='kvm'>\n  <name>cli</name>\n  <uuid>"),
        "{xml}"
    );
    assert!(xml.contains("  <memory unit='KiB'>131072</memory>\n  <currentMemory unit='KiB'>131072</currentMemory>\n"));
    assert!(xml.contains("<alias name='virtio-disk0'/>"));
    // The output is itself a valid definition that formats to the same text.
    let again = run(&["format", "-"], Some(&xml));
    assert_eq!(text(&again.stdout), xml);
}

#[test]
fn to_argv_prints_one_argument_per_line_and_warns_on_stderr() {
    let out = run(&["to-argv", "-", "--runtime-dir", "/tmp/rv"], Some(GOOD));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let args: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let pos = args.iter().position(|a| a == "-name").unwrap();
    assert_eq!(args[pos + 1], "guest=cli,debug-threads=on");
    assert!(args.contains(
        &"socket,id=charmonitor,path=/tmp/rv/monitor.sock,server=on,wait=off".to_string()
    ));
    assert!(args.contains(&"isa-serial,chardev=charserial0,id=serial0,index=0".to_string()));
    // The VNC console as libvirt writes it; the sound card left off.
    let pos = args.iter().position(|a| a == "-vnc").unwrap();
    assert_eq!(args[pos + 1], "127.0.0.1:0,audiodev=audio1");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("-: warning: sound (ich9) left off"),
        "{err}"
    );
}

#[test]
fn to_argv_lists_refused_devices_with_lines() {
    let xml = GOOD.replace("bus='virtio'", "bus='usb'").replace(
        "<serial type='pty'/>",
        "<serial type='pty'/>\n    <hostdev mode='subsystem' type='pci'/>",
    );
    let out = run(&["to-argv", "-"], Some(&xml));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "-:6: disk 'vda': bus 'usb' is not emulated",
            "-:8: hostdev: 'pci' is not emulated"
        ],
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn format_inactive_leaves_out_aliases() {
    let out = run(&["format", "--inactive", "-"], Some(GOOD));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let xml = text(&out.stdout);
    assert!(!xml.contains("<alias"), "{xml}");
    assert!(xml.contains("<address type='virtio-mmio'/>"), "{xml}");
}
