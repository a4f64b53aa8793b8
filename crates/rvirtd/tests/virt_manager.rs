//! The real virt-manager (Debian's package) as rvirt's desktop client.
//!
//! First the answers virt-manager depends on, through libvirt-python
//! (capabilities, domain capabilities, node info, version, domain stats,
//! XML flags, event registrations, pause/resume/shutdown, autostart).
//! Then virt-manager itself under Xvfb, driven with xdotool and checked
//! on screenshots: the VM list shows a running and a shut-off VM, a
//! double-click opens the running VM's window, its serial console shows
//! the guest's lines as they come, Force Off turns it off and Run starts
//! the other. The screenshots stay in target/tmp/virt-manager-shots/.
//! And its graphics console: a guest's picture on a bochs-display, pixel
//! for pixel, through OPEN_GRAPHICS_FD and gtk-vnc; virt-viewer --attach
//! the same way.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{display_pattern, display_xml, domain_xml, have_virsh, vmm, Rvirtd};
use rvirt_test_guests::Guest;
use rvirt_testkit::{poll, run, try_run, wait_for, Spawned};

/// How long a libvirt-python script may take; each dumps its stack and
/// exits 10 s before (faulthandler), so a hang shows where it was.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// How long one xdotool, import or convert may take.
const TOOL_LIMIT: Duration = Duration::from_secs(30);

/// The running VM's guest prints `TICK n` every two seconds; its serial
/// is a pty so that virt-manager offers a console.
fn ticker_xml(name: &str) -> String {
    domain_xml(name, Guest::Ticker).replace("type='stdio'", "type='pty'")
}

fn required() -> bool {
    std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some()
}

fn python_with_libvirt() -> Option<&'static str> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        try_run(
            Command::new(py).args(["-c", "import libvirt"]),
            Duration::from_secs(30),
        )
        .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            !required(),
            "python3-libvirt is required: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("python3-libvirt not installed: test skipped");
    }
    found
}

const NEEDS: &str = r#"
import faulthandler, os, sys, time
import xml.etree.ElementTree as ET
import libvirt

faulthandler.dump_traceback_later(110, exit=True)
uri, vmm, want_version = sys.argv[1], sys.argv[2], int(sys.argv[3])
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(uri)

assert conn.getVersion() == want_version, conn.getVersion()

meminfo = dict(l.split(":", 1) for l in open("/proc/meminfo"))
mem_kib = int(meminfo["MemTotal"].split()[0])
ncpus = os.cpu_count()

model, mem_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
assert cpus == ncpus, (cpus, ncpus)
assert mem_mib == mem_kib // 1024, (mem_mib, mem_kib)
assert nodes * sockets * cores * threads == cpus, conn.getInfo()

caps = ET.fromstring(conn.getCapabilities())
host_cpu = caps.find("host/cpu")
assert host_cpu.findtext("arch") == "x86_64"
assert host_cpu.findtext("model"), "no host CPU model"
topo = host_cpu.find("topology").attrib
assert (int(topo["sockets"]), int(topo["cores"]), int(topo["threads"])) == (sockets, cores, threads), topo
cell = caps.find("host/topology/cells/cell")
assert int(cell.findtext("memory")) == mem_kib
assert len(cell.findall("cpus/cpu")) == ncpus
guest = caps.find("guest")
assert guest.findtext("os_type") == "hvm"
arch = guest.find("arch")
assert arch.get("name") == "x86_64"
assert arch.findtext("emulator") == vmm, arch.findtext("emulator")
assert [d.get("type") for d in arch.findall("domain")] == ["kvm"]
machines = [m.text for m in arch.findall("machine")]
assert {"pc", "q35", "microvm"} <= set(machines), machines

dcaps = ET.fromstring(conn.getDomainCapabilities(vmm, "x86_64", "microvm", "kvm", 0))
assert dcaps.findtext("domain") == "kvm" and dcaps.findtext("machine") == "microvm"
assert dcaps.findtext("path") == vmm
try:
    conn.getDomainCapabilities(None, None, "virt", None, 0)
    raise SystemExit("unknown machine accepted")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_INVALID_ARG, e

# virt-manager's registrations: domain events are served, the object
# kinds rvirt does not have answer errors that it tolerates.
cb = lambda *a: None
ids = [conn.domainEventRegisterAny(None, ev, cb, None) for ev in (
    libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED)]
assert len(set(ids)) == 4, ids
# Storage pool and network events are served (virt-manager's storage and
# network tabs follow them).
pool_cb = conn.storagePoolEventRegisterAny(None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, cb, None)
net_cb = conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, cb, None)
assert len(set(ids + [pool_cb, net_cb])) == 6, (pool_cb, net_cb, ids)
conn.storagePoolEventDeregisterAny(pool_cb)
conn.networkEventDeregisterAny(net_cb)
# Node devices are a kind rvirt lacks: an error virt-manager tolerates.
try:
    conn.nodeDeviceEventRegisterAny(None, libvirt.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, cb, None)
    raise SystemExit("registration of an object kind rvirt lacks succeeded")
except libvirt.libvirtError as e:
    assert e.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_RPC), e
for i in ids:
    conn.domainEventDeregisterAny(i)

run = conn.lookupByName("ticker")
off = conn.lookupByName("idle")

stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU,
                               libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
assert [d.name() for d, _ in stats] == ["ticker"], stats
s = stats[0][1]
assert s["state.state"] == libvirt.VIR_DOMAIN_RUNNING, s
assert s["vcpu.current"] == 1 and s["vcpu.maximum"] == 1, s
assert s["balloon.maximum"] == 65536 and s["balloon.current"] == 65536, s

live = run.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
x = ET.fromstring(live)
serial = x.find("devices/serial")
assert serial.get("type") == "pty" and serial.find("source").get("path").startswith("/dev/pts/"), live
assert serial.find("alias").get("name") == "serial0", live
assert x.get("id") == str(run.ID()), live
inactive = ET.fromstring(run.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE))
assert inactive.find("devices/serial/alias") is None and inactive.get("id") is None
assert ET.fromstring(run.XMLDesc(libvirt.VIR_DOMAIN_XML_UPDATE_CPU)).findtext("name") == "ticker"
assert ET.fromstring(off.XMLDesc(0)).findtext("name") == "idle"
# The emulator virt-manager shows and passes back to getDomainCapabilities.
emu = x.findtext("devices/emulator")
assert emu == vmm, emu
conn.getDomainCapabilities(emu, "x86_64", x.find("os/type").get("machine"), x.get("type"), 0)

run.suspend()
assert run.state()[0] == libvirt.VIR_DOMAIN_PAUSED, run.state()
run.resume()
assert run.state()[0] == libvirt.VIR_DOMAIN_RUNNING, run.state()

assert off.autostart() == 0
off.setAutostart(1)
assert off.autostart() == 1
off.setAutostart(0)
assert off.autostart() == 0

run.shutdown()  # the ticker guest ignores the power button
run.destroy()
assert run.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED], run.state()
conn.close()
print("OK")
"#;

/// rvirt's version as CONNECT_GET_VERSION encodes it (QEMU style).
fn encoded_version() -> u64 {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|x| x.parse::<u64>().unwrap());
    let (a, b, c) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    a * 1_000_000 + b * 1_000 + c
}

/// Defines `ticker` (started) and `idle` (shut off).
fn two_vms(d: &Rvirtd) {
    let t = d.xml_file("ticker.xml", &ticker_xml("ticker"));
    let i = d.xml_file("idle.xml", &domain_xml("idle", Guest::Counter));
    d.ok(&["define", &t]);
    d.ok(&["define", &i]);
    d.ok(&["start", "ticker"]);
}

#[test]
fn answers_virt_manager_needs_through_libvirt_python() {
    let Some(python) = python_with_libvirt() else {
        return;
    };
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    two_vms(&d);
    let script = d.xml_file("needs.py", NEEDS);
    let out = Spawned::start(
        Command::new(python)
            .arg(&script)
            .arg(d.uri())
            .arg(vmm())
            .arg(encoded_version().to_string()),
    )
    .on_fail(d.reporter())
    .output(SCRIPT_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{stdout}{}\ndaemon: {}",
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
}

// ---- The GUI ----

/// The programs the GUI test drives, with their Debian packages.
const TOOLS: &[(&str, &str)] = &[
    ("virt-manager", "virt-manager"),
    ("Xvfb", "xvfb"),
    ("xdotool", "xdotool"),
    ("import", "imagemagick"),
    ("convert", "imagemagick"),
    ("dbus-run-session", "dbus-daemon"),
];

fn have_gui_tools() -> bool {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(prog, _)| {
            !std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !required(),
        "the virt-manager test needs Debian's {missing:?}: RVIRT_REQUIRE_REFERENCE is set"
    );
    eprintln!("{missing:?} not installed: test skipped");
    false
}

/// A process group that dies with the test: virt-manager with its session
/// bus and accessibility helpers, its output in a log file kept with the
/// screenshots (where rvirt-testkit's `Spawned` would keep it in memory).
struct Group(Child);

impl Group {
    fn spawn(cmd: &mut Command) -> Self {
        Group(cmd.process_group(0).spawn().expect("spawn"))
    }

    /// The CPU time (clock ticks) the group's processes have used so far.
    fn cpu_ticks(&self) -> u64 {
        let pgid = self.0.id().to_string();
        let mut ticks = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // After the command's name (in parentheses, which may hold
            // spaces): state, ppid, pgrp, ..., utime and stime 12th and 13th.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let f: Vec<&str> = rest.split(' ').collect();
            if f.get(2) == Some(&pgid.as_str()) {
                ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
            }
        }
        ticks
    }

    /// Waits for `what` while virt-manager works toward it: it fails once
    /// the group has used no CPU for `idle` (stuck: a hang) or after five
    /// minutes in all, not after a fixed time that a loaded machine (its
    /// Python start-up is seconds of CPU) may need whole; `log` is shown.
    fn wait_while_busy(&self, what: &str, idle: Duration, log: &Path, mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        let (mut last, mut since) = (self.cpu_ticks(), std::time::Instant::now());
        poll(what, Duration::from_secs(300), || {
            if f() {
                return Ok(());
            }
            let now = self.cpu_ticks();
            if now != last {
                (last, since) = (now, std::time::Instant::now());
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            let report = format!(
                "{:?} in, {now} CPU ticks, none for {:?}; virt-manager's log ends:\n{tail}\n{}",
                start.elapsed(),
                since.elapsed(),
                rvirt_testkit::process_state(self.0.id() as i32)
            );
            if since.elapsed() > idle {
                panic!("{what}: virt-manager stuck\n{report}");
            }
            Err(report)
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: kill with a negative pid signals the process group this
        // test created for its own child; nothing else is in it.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// An RGB screenshot of the whole screen.
struct Shot {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Shot {
    fn px(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let i = (y.min(self.h - 1) * self.w + x.min(self.w - 1)) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    /// Pixels in the rectangle for which `f` holds.
    fn count(
        &self,
        x0: usize,
        y0: usize,
        x1: usize,
        y1: usize,
        f: impl Fn((u8, u8, u8)) -> bool,
    ) -> usize {
        let mut n = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                n += usize::from(f(self.px(x, y)));
            }
        }
        n
    }
}

/// The blue of virt-manager's "running" icon (68,134,191) and its shades,
/// which neither the grey shut-off icon nor the white list has.
fn running_blue((r, g, b): (u8, u8, u8)) -> bool {
    b > 150 && b as i32 > r as i32 + 80 && g > 90
}

fn light((r, g, b): (u8, u8, u8)) -> bool {
    r > 150 && g > 150 && b > 150
}

/// Parses a binary PPM (P6, maxval 255).
fn parse_ppm(data: &[u8]) -> Shot {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let rgb = data[i + 1..].to_vec();
    assert_eq!(rgb.len(), w * h * 3, "short PPM");
    Shot { w, h, rgb }
}

struct Screen {
    display: String,
    shots: PathBuf,
    _xvfb: Spawned,
}

impl Screen {
    fn start(shots: &Path) -> Self {
        let mut xvfb = Spawned::start(
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ])
                .process_group(0),
        );
        let line = xvfb
            .line(Duration::from_secs(30))
            .unwrap_or_else(|| xvfb.fail("no display number"));
        let display = format!(":{}", line.trim());
        assert!(line.trim().parse::<u32>().is_ok(), "Xvfb said {line:?}");
        Screen {
            display,
            shots: shots.to_path_buf(),
            _xvfb: xvfb,
        }
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = run(
            Command::new("xdotool")
                .args(args)
                .env("DISPLAY", &self.display),
            TOOL_LIMIT,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn click(&self, x: u32, y: u32, times: u32) {
        self.xdotool(&[
            "mousemove",
            &x.to_string(),
            &y.to_string(),
            "click",
            "--repeat",
            &times.to_string(),
            "--delay",
            "80",
            "1",
        ]);
    }

    /// Visible windows: (id, name, x, y, w, h).
    fn windows(&self) -> Vec<(String, String, i32, i32, i32, i32)> {
        let ids = self.xdotool(&["search", "--onlyvisible", "--name", ".*"]);
        let mut out = Vec::new();
        for id in ids.split_whitespace() {
            let name = self.xdotool(&["getwindowname", id]).trim().to_string();
            let g = self.xdotool(&["getwindowgeometry", "--shell", id]);
            let v = |k: &str| -> i32 {
                g.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            out.push((
                id.to_string(),
                name,
                v("X"),
                v("Y"),
                v("WIDTH"),
                v("HEIGHT"),
            ));
        }
        out
    }

    fn window_named(&self, name: &str) -> Option<String> {
        self.windows()
            .into_iter()
            .find(|w| w.1 == name)
            .map(|w| w.0)
    }

    /// Saves the screen as `name`.png in the shots directory and reads
    /// its pixels.
    fn shot(&self, name: &str) -> Shot {
        let png = self.shots.join(format!("{name}.png"));
        let import = run(
            Command::new("import")
                .args(["-display", &self.display, "-window", "root"])
                .arg(&png),
            TOOL_LIMIT,
        );
        let ok = import.status.success();
        assert!(
            ok,
            "import failed: {}",
            String::from_utf8_lossy(&import.stderr)
        );
        let ppm = run(Command::new("convert").arg(&png).arg("ppm:-"), TOOL_LIMIT);
        parse_ppm(&ppm.stdout)
    }

    /// Takes `name` screenshots until `f` holds on one.
    fn wait_shot(&self, name: &str, what: &str, f: impl Fn(&Shot) -> bool) -> Shot {
        poll(what, Duration::from_secs(30), || {
            let s = self.shot(name);
            if f(&s) {
                Ok(s)
            } else {
                std::thread::sleep(Duration::from_millis(500));
                Err(format!(
                    "see {}",
                    self.shots.join(format!("{name}.png")).display()
                ))
            }
        })
    }
}

/// virt-manager on `screen` connected to `d` by `uri`, with `args` after the
/// connection, its home and settings private to the test and its log kept
/// with the screenshots.
fn virt_manager(uri: &str, d: &Rvirtd, screen: &Screen, args: &[&str]) -> Group {
    let home = d.root().join("home");
    let runtime = home.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let log = std::fs::File::create(screen.shots.join("virt-manager.log")).unwrap();
    Group::spawn(
        Command::new("dbus-run-session")
            .args(["--", "virt-manager", "--no-fork", "--debug", "--connect"])
            .arg(uri)
            .args(args)
            .env("DISPLAY", &screen.display)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            // Settings in memory: no state from an earlier run, nothing left.
            .env("GSETTINGS_BACKEND", "memory")
            .env("NO_AT_BRIDGE", "1")
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
}

// Where things are on the 1280x800 screen: with no window manager every
// toplevel sits at 0,0 with GTK's default size, so the positions are
// fixed. The VM list is sorted by name: `idle` first, `ticker` second.
const IDLE_ROW: (u32, u32) = (70, 138);
const TICKER_ROW: (u32, u32) = (77, 178);
/// The state icon of a list row whose centre is at `y`.
fn icon_blue(s: &Shot, y: usize) -> usize {
    s.count(19, y - 14, 52, y + 16, running_blue)
}
fn icon_dark(s: &Shot, y: usize) -> usize {
    s.count(19, y - 14, 52, y + 16, |(r, g, b)| {
        r < 160 && g < 160 && b < 160
    })
}
const RUN_BUTTON: (u32, u32) = (178, 46);
/// The arrow next to the VM window's shutdown button, and the menu's
/// Force Off item.
const SHUTDOWN_MENU: (u32, u32) = (250, 46);
const FORCE_OFF_ITEM: (u32, u32) = (291, 154);
/// The VM window's console area (black VTE).
const CONSOLE: (usize, usize, usize, usize) = (0, 70, 1020, 790);

fn console_light(s: &Shot) -> usize {
    let (x0, y0, x1, y1) = CONSOLE;
    s.count(x0, y0, x1, y1, light)
}

fn console_black(s: &Shot) -> bool {
    let (x0, y0, x1, y1) = CONSOLE;
    let dark = s.count(x0, y0, x1, y1, |(r, g, b)| r < 30 && g < 30 && b < 30);
    dark > (x1 - x0) * (y1 - y0) * 9 / 10
}

#[test]
fn virt_manager_lists_opens_console_forces_off_and_runs() {
    if !have_virsh() || !have_gui_tools() {
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("virt-manager-shots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let d = Rvirtd::start();
    two_vms(&d);
    d.wait_state("ticker", "running (booted)");
    // No console is open yet: rvirtd reads the pty into the domain log.
    d.wait_log("ticker", "TICK 1");

    let screen = Screen::start(&shots);
    let _vm = virt_manager(&d.uri(), &d, &screen, &[]);

    _vm.wait_while_busy(
        "the virt-manager window",
        Duration::from_secs(60),
        &shots.join("virt-manager.log"),
        || screen.window_named("Virtual Machine Manager").is_some(),
    );
    // 1. Both VMs listed: the running one with the blue icon, the shut-off
    //    one with the grey one.
    screen.wait_shot(
        "1-list",
        "ticker running and idle shut off in the list",
        |s| {
            icon_blue(s, TICKER_ROW.1 as usize) > 50
                && icon_blue(s, IDLE_ROW.1 as usize) == 0
                && icon_dark(s, IDLE_ROW.1 as usize) > 50
        },
    );

    // 2. Double-click opens the VM window on its serial console.
    screen.click(TICKER_ROW.0, TICKER_ROW.1, 2);
    wait_for("the ticker VM window", Duration::from_secs(30), || {
        screen.window_named("ticker on QEMU/KVM").is_some()
    });
    let first = screen.wait_shot("2-console", "the guest's lines on the console", |s| {
        console_black(s) && console_light(s) > 100
    });
    // 3. New lines keep coming: the console grows as the guest ticks.
    let before = console_light(&first);
    screen.wait_shot("3-console-later", "more guest lines on the console", |s| {
        console_light(s) > before + 60
    });

    // 4. Force Off from the shutdown menu, confirmed in the dialog.
    screen.click(SHUTDOWN_MENU.0, SHUTDOWN_MENU.1, 1);
    std::thread::sleep(Duration::from_millis(800));
    screen.shot("4-shutdown-menu");
    screen.click(FORCE_OFF_ITEM.0, FORCE_OFF_ITEM.1, 1);
    let mut dialog = None;
    wait_for(
        "the force-off confirmation",
        Duration::from_secs(20),
        || {
            dialog = screen
                .windows()
                .into_iter()
                .find(|w| w.1.is_empty() && (200..700).contains(&w.4) && (100..400).contains(&w.5));
            dialog.is_some()
        },
    );
    screen.shot("5-confirm");
    let (_, _, x, y, w, h) = dialog.unwrap();
    // "Yes" is the right half of the button row along the bottom.
    screen.click((x + w * 3 / 4) as u32, (y + h - 17) as u32, 1);
    d.wait_state("ticker", "shut off (destroyed)");
    screen.wait_shot(
        "6-forced-off",
        "the console replaced by 'not running'",
        |s| !console_black(s),
    );

    // 5. Back in the list, Run starts the other VM.
    let manager = screen.window_named("Virtual Machine Manager").unwrap();
    screen.xdotool(&["windowraise", &manager]);
    std::thread::sleep(Duration::from_millis(500));
    screen.click(IDLE_ROW.0, IDLE_ROW.1, 1);
    std::thread::sleep(Duration::from_millis(500));
    screen.click(RUN_BUTTON.0, RUN_BUTTON.1, 1);
    d.wait_state("idle", "running (booted)");
    screen.xdotool(&["mousemove", "600", "700"]);
    screen.wait_shot("7-ticker-off-in-list", "ticker shown shut off", |s| {
        icon_blue(s, TICKER_ROW.1 as usize) == 0 && icon_dark(s, TICKER_ROW.1 as usize) > 50
    });
    // Select the other row so that idle's icon is not on the selection's
    // blue, then both icons must have swapped.
    screen.click(TICKER_ROW.0, TICKER_ROW.1, 1);
    screen.xdotool(&["mousemove", "600", "700"]);
    screen.wait_shot("8-idle-running-in-list", "idle running in the list", |s| {
        icon_blue(s, IDLE_ROW.1 as usize) > 50
    });
    d.ok(&["destroy", "idle"]);
}

/// Where the guest's 800x600 picture sits on the screen: the first pixel,
/// row by row, of the red band at its top left, if every pixel of the
/// picture is there.
fn find_picture(s: &Shot) -> Result<(usize, usize), String> {
    let (w, h, want) = display_pattern();
    let at = s.rgb.chunks(3).position(|p| p == [255, 0, 0]);
    let Some(at) = at else {
        return Err("no red band on the screen".into());
    };
    let (ox, oy) = (at % s.w, at / s.w);
    if ox + w > s.w || oy + h > s.h {
        return Err(format!(
            "the picture at ({ox}, {oy}) does not fit the screen"
        ));
    }
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let px = s.px(ox + x, oy + y);
            if [px.0, px.1, px.2] != want[i..i + 3] {
                return Err(format!(
                    "guest pixel ({x}, {y}) at ({}, {}) is {px:?}, not {:?}",
                    ox + x,
                    oy + y,
                    &want[i..i + 3]
                ));
            }
        }
    }
    Ok((ox, oy))
}

/// virt-manager's graphics console: the VM window of a guest that drew on
/// its bochs-display shows the guest's picture, pixel for pixel, through
/// gtk-vnc on the socket virt-manager gets with DOMAIN_OPEN_GRAPHICS_FD
/// (a local connection). The screenshots stay in
/// target/tmp/virt-manager-graphics-shots/.
#[test]
fn virt_manager_graphics_console_shows_the_guests_picture() {
    if !have_virsh() || !have_gui_tools() {
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("virt-manager-graphics-shots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let x = d.xml_file("drawing.xml", &display_xml("drawing"));
    d.ok(&["define", &x]);
    d.ok(&["start", "drawing"]);
    // The guest keeps its picture for two minutes after this line.
    d.wait_log("drawing", "DRAWN");

    let screen = Screen::start(&shots);
    // The local URI a user types (`qemu:///system`), with the test's
    // socket: virt-manager takes a URI with a transport (`qemu+unix`) for
    // a remote host and would dial the listen address itself.
    let local = d.uri().replacen("qemu+unix://", "qemu://", 1);
    let _vm = virt_manager(&local, &d, &screen, &["--show-domain-console", "drawing"]);
    _vm.wait_while_busy(
        "the drawing VM window",
        Duration::from_secs(60),
        &shots.join("virt-manager.log"),
        || screen.window_named("drawing on QEMU/KVM").is_some(),
    );
    let mut found = Err(String::new());
    let shot = poll(
        "the guest's picture in the VM window",
        Duration::from_secs(45),
        || {
            let s = screen.shot("1-graphics");
            found = find_picture(&s);
            match &found {
                Ok(_) => Ok(s),
                Err(e) => {
                    std::thread::sleep(Duration::from_millis(500));
                    Err(format!(
                        "{e}: see {}",
                        shots.join("1-graphics.png").display()
                    ))
                }
            }
        },
    );
    let (ox, oy) = found.unwrap();
    // Inside the window, below its toolbar.
    assert!(oy > 0 && ox + 800 <= shot.w, "picture at ({ox}, {oy})");
    // The console came through OPEN_GRAPHICS_FD: virt-manager logs a
    // connection to a host and port only when it dials one itself.
    let log = std::fs::read_to_string(shots.join("virt-manager.log")).unwrap_or_default();
    assert!(
        log.contains("drawing") && !log.contains("VNC connecting to host"),
        "virt-manager did not use openGraphicsFD: see {}",
        shots.join("virt-manager.log").display()
    );
    d.ok(&["destroy", "drawing"]);
}

/// virt-viewer (`--attach`: the console through OPEN_GRAPHICS_FD, as
/// virt-manager's) shows the same picture, pixel for pixel. Screenshots in
/// target/tmp/virt-viewer-shots/.
#[test]
fn virt_viewer_attach_shows_the_guests_picture() {
    if !have_virsh() || !have_gui_tools() {
        return;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("virt-viewer").is_file()));
    if !on_path {
        assert!(
            !required(),
            "the virt-viewer test needs Debian's virt-viewer: RVIRT_REQUIRE_REFERENCE is set"
        );
        eprintln!("virt-viewer not installed: test skipped");
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("virt-viewer-shots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    // VNC from 5900: this test's VMs take ports in a namespace of its own.
    if !rvirt_testkit::netns::own_ports() {
        return;
    }
    let d = Rvirtd::start();
    let x = d.xml_file("drawing.xml", &display_xml("drawing"));
    d.ok(&["define", &x]);
    d.ok(&["start", "drawing"]);
    d.wait_log("drawing", "DRAWN");

    let screen = Screen::start(&shots);
    let home = d.root().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = std::fs::File::create(shots.join("virt-viewer.log")).unwrap();
    let local = d.uri().replacen("qemu+unix://", "qemu://", 1);
    let _viewer = Group::spawn(
        Command::new("dbus-run-session")
            .args(["--", "virt-viewer", "--debug", "--attach", "--connect"])
            .arg(&local)
            .arg("drawing")
            .env("DISPLAY", &screen.display)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("GSETTINGS_BACKEND", "memory")
            .env("NO_AT_BRIDGE", "1")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    );
    let mut found = Err(String::new());
    poll(
        "the guest's picture in virt-viewer",
        Duration::from_secs(60),
        || {
            let s = screen.shot("1-viewer");
            found = find_picture(&s);
            match &found {
                Ok(_) => Ok(()),
                Err(e) => {
                    std::thread::sleep(Duration::from_millis(500));
                    Err(format!("{e}: see {}", shots.join("1-viewer.png").display()))
                }
            }
        },
    );
    d.ok(&["destroy", "drawing"]);
}

const STREAMS: &str = r#"
import faulthandler, os, subprocess, sys, time
import libvirt

# recv() blocks: a stream that never ends dumps the stack and exits.
faulthandler.dump_traceback_later(110, exit=True)
uri = sys.argv[1]
conn = libvirt.open(uri)
dom = conn.lookupByName("ticker")

def read_until(st, needle, timeout=15):
    got = b""
    deadline = time.time() + timeout
    while needle not in got:
        assert time.time() < deadline, got
        chunk = st.recv(4096)
        assert isinstance(chunk, bytes) and chunk, chunk
        got += chunk
    return got

def fails(code, f):
    try:
        f()
    except libvirt.libvirtError as e:
        assert e.get_error_code() == code, (code, e.get_error_code(), e)
        return str(e)
    raise SystemExit("should have failed")

# virt-manager opens the alias of the live XML's serial.
first = conn.newStream(0)
dom.openConsole("serial0", first, 0)
read_until(first, b"TICK")

# A second opener without FORCE is refused; the first keeps its console.
other = libvirt.open(uri)
msg = fails(libvirt.VIR_ERR_OPERATION_FAILED,
            lambda: other.lookupByName("ticker").openConsole("serial0", other.newStream(0), 0))
assert "Active console session exists" in msg, msg
read_until(first, b"TICK")

# Bad input: an alias that does not exist, a shut-off domain.
fails(libvirt.VIR_ERR_INTERNAL_ERROR,
      lambda: other.lookupByName("ticker").openConsole("serial7", other.newStream(0), libvirt.VIR_DOMAIN_CONSOLE_FORCE))
fails(libvirt.VIR_ERR_OPERATION_INVALID,
      lambda: other.lookupByName("idle").openConsole("serial0", other.newStream(0), 0))

# FORCE takes it over: the first holder's stream ends in an error.
taken = other.newStream(0)
other.lookupByName("ticker").openConsole("serial0", taken, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
read_until(taken, b"TICK")
try:
    while first.recv(4096):
        pass
    raise SystemExit("first stream ended without an error")
except libvirt.libvirtError:
    pass
taken.finish()

# A client that vanishes with its console open: the next opener, without
# FORCE, gets the console once rvirtd noticed.
child = subprocess.run([sys.executable, "-c", """
import os, sys, libvirt
c = libvirt.open(sys.argv[1]); s = c.newStream(0)
c.lookupByName('ticker').openConsole('serial0', s, 0); s.recv(1)
os._exit(0)
""", uri], timeout=30)
assert child.returncode == 0
deadline = time.time() + 10
while True:
    st = conn.newStream(0)
    try:
        dom.openConsole("serial0", st, 0)
        break
    except libvirt.libvirtError as e:
        assert time.time() < deadline, e
        time.sleep(0.2)
read_until(st, b"TICK")

# The VM stops: the stream reaches its end instead of hanging.
dom.destroy()
deadline = time.time() + 10
while st.recv(4096):
    assert time.time() < deadline
other.close()
conn.close()
print("OK")
"#;

/// The console path virt-manager uses (DOMAIN_OPEN_CONSOLE with the
/// `serial0` alias) through libvirt-python's stream API, with the bad
/// cases: a second opener, FORCE, a missing alias, a shut-off domain, a
/// client that vanishes with the stream open, a VM that stops.
#[test]
fn console_streams_as_virt_manager_opens_them() {
    let Some(python) = python_with_libvirt() else {
        return;
    };
    if !have_virsh() {
        return;
    }
    let d = Rvirtd::start();
    two_vms(&d);
    let script = d.xml_file("streams.py", STREAMS);
    let out = Spawned::start(Command::new(python).arg(&script).arg(d.uri()))
        .on_fail(d.reporter())
        .output(SCRIPT_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "{stdout}{}\ndaemon: {}",
        String::from_utf8_lossy(&out.stderr),
        d.daemon_log_tail()
    );
    // The log has every line, with consoles open, closed and taken over:
    // the consoles got their copy without taking bytes from the log.
    let log = d.log("ticker");
    let ticks: Vec<u64> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("TICK ")?.trim().parse().ok())
        .collect();
    assert!(ticks.len() >= 3, "{log}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps in the guest's lines in the log: {ticks:?}"
    );
}

/// The last `TICK n` in the ticker's domain log.
fn last_tick(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("TICK ")?.trim().parse().ok())
}

/// A pty serial keeps reaching the domain log after rvirtd restarts and
/// re-adopts the running VM.
#[test]
fn serial_log_survives_a_daemon_restart() {
    if !have_virsh() {
        return;
    }
    let mut d = Rvirtd::start();
    two_vms(&d);
    d.wait_log("ticker", "TICK 1");
    d.kill9();
    d.spawn();
    d.wait_state("ticker", "running (booted)");
    let before = last_tick(&d.log("ticker")).unwrap();
    wait_for(
        "new lines after the restart",
        Duration::from_secs(15),
        || last_tick(&d.log("ticker")).is_some_and(|n| n >= before + 2),
    );
    d.ok(&["destroy", "ticker"]);
}
