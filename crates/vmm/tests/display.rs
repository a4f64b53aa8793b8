//! Display devices: the `display` test guest sets a Bochs DISPI mode on
//! `-device bochs-display` and draws; a real VNC client (vncdotool)
//! captures the screen between its steps, which must show the pattern,
//! keep it through an impossible mode and a BAR move, and show what the
//! guest drew through the moved BAR. The same guest and command line run
//! under QEMU 7.2 must give the same pixels.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rvirt_testkit::run;

const T: Duration = Duration::from_secs(120);
const W: usize = 800;
const H: usize = 600;

/// A capture: width, height, RGB bytes.
type Image = (usize, usize, Vec<u8>);

fn read_ppm(path: &Path) -> Image {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = data[at + 1..].to_vec();
    assert_eq!(pixels.len(), w * h * 3);
    (w, h, pixels)
}

/// Captures the screen served on the unix socket `sock` into `out` (a
/// PNG, as vncdotool writes, converted to PPM beside it by PIL, which
/// vncdotool brings).
fn capture(sock: &Path, out: &Path) -> Image {
    let png = out.with_extension("png");
    let o = run(
        Command::new("vncdo")
            .arg("-s")
            .arg(sock)
            .arg("capture")
            .arg(&png),
        T,
    );
    assert!(
        o.status.success(),
        "vncdo capture: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        Command::new("python3")
            .args([
                "-c",
                "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], 'PPM')",
            ])
            .arg(&png)
            .arg(out),
        T,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_ppm(out)
}

/// What the guest draws: step 1 (bands and a box), with step 3's black
/// stripe if `stripe`.
fn expected(stripe: bool) -> Image {
    let mut px = Vec::with_capacity(W * H * 3);
    for y in 0..H {
        for x in 0..W {
            let rgb = if stripe && (300..320).contains(&y) {
                [0, 0, 0]
            } else if (350..450).contains(&x) && (100..150).contains(&y) {
                [255, 255, 0]
            } else {
                [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]][y / 150]
            };
            px.extend_from_slice(&rgb);
        }
    }
    (W, H, px)
}

fn assert_same(what: &str, got: &Image, want: &Image) {
    assert_eq!((got.0, got.1), (want.0, want.1), "{what}: size");
    let differ = got
        .2
        .chunks(3)
        .zip(want.2.chunks(3))
        .position(|(a, b)| a != b);
    if let Some(i) = differ {
        panic!(
            "{what}: pixel ({}, {}) is {:?}, not {:?}",
            i % got.0,
            i / got.0,
            &got.2[i * 3..i * 3 + 3],
            &want.2[i * 3..i * 3 + 3]
        );
    }
}

/// Runs the display guest under `program` with `args` and a VNC server on
/// a unix socket, captures the screen after each of its steps, and
/// checks its lines; returns the captures.
fn steps(program: &Path, machine: &str, args: &[&str], dir: &Path, name: &str) -> Vec<Image> {
    steps_of(
        program,
        machine,
        args,
        dir,
        name,
        &["DRAWN", "REFUSED", "MOVED"],
    )
}

fn steps_of(
    program: &Path,
    machine: &str,
    args: &[&str],
    dir: &Path,
    name: &str,
    names: &[&str],
) -> Vec<Image> {
    let sock = dir.join(format!("{name}.vnc"));
    let guest = Guest::Display.path();
    let mut cmd = Command::new(program);
    cmd.args(["-M", machine, "-accel", "kvm", "-m", "128", "-nodefaults"])
        .args(["-serial", "stdio", "-vnc"])
        .arg(format!("unix:{}", sock.display()))
        .args(args)
        .arg("-kernel")
        .arg(&guest)
        .stdin(Stdio::piped());
    let mut vm = Spawned::start(die_with_test(&mut cmd));
    let found = vm.line_with("DISPLAY ", T);
    assert!(found.contains("id=0xb0c5 vram64k=256"), "{name}: {found}");
    let edid = vm.line_with("EDID ", T);
    assert_eq!(edid.trim(), "EDID ffffff00 ffffff", "{name}");
    let mut shots = Vec::new();
    for (i, step) in names.iter().enumerate() {
        vm.line_with(step, T);
        shots.push(capture(&sock, &dir.join(format!("{name}-{i}.ppm"))));
        vm.stdin().write_all(b"\n").unwrap();
        vm.stdin().flush().unwrap();
    }
    vm.line_with("DONE", T);
    let status = vm.wait(T);
    assert!(status.success(), "{name}: {status}\n{}", vm.describe());
    shots
}

#[test]
fn bochs_display_draws_refuses_and_follows_its_bar_on_pc() {
    draws_refuses_and_follows_its_bar("pc");
}

#[test]
fn bochs_display_draws_refuses_and_follows_its_bar_on_q35() {
    draws_refuses_and_follows_its_bar("q35");
}

fn draws_refuses_and_follows_its_bar(machine: &str) {
    if !have_vncdotool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = steps(
        &vmm(),
        machine,
        &["-device", "bochs-display"],
        dir.path(),
        "rvirt",
    );
    assert_same("after drawing", &ours[0], &expected(false));
    assert_same("after an impossible mode", &ours[1], &expected(false));
    assert_same("drawn through the moved BAR", &ours[2], &expected(true));

    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        eprintln!("QEMU not installed: the comparison did not run");
        return;
    }
    let theirs = steps(
        Path::new("qemu-system-x86_64"),
        machine,
        &["-display", "none", "-device", "bochs-display"],
        dir.path(),
        "qemu",
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_same(&format!("step {i}: rvirt against QEMU"), a, b);
    }
}

/// `-device VGA`'s and `-vga`'s bad values: one line each, naming what
/// is wrong; a missing VGA BIOS names the file.
#[test]
fn std_vga_options_are_checked() {
    let guest = Guest::Hello.path();
    for (args, message) in [
        (
            &["-device", "VGA,romfile=/nonexistent/vgabios.bin"][..],
            "-device VGA: romfile: could not read '/nonexistent/vgabios.bin'",
        ),
        (
            &["-device", "VGA,vgamem_mb=512"][..],
            "does not fit the 256 MiB 32-bit PCI window",
        ),
        (
            &["-device", "VGA,vgamem_mb=x"][..],
            "'x' is not a number of MiB",
        ),
        (
            &["-vga", "qxl"][..],
            "only 'std' (QEMU's std VGA) and 'none' are supported",
        ),
        (
            &["-vga", "std", "-device", "VGA"][..],
            "only one display device",
        ),
        (
            &["-M", "microvm", "-vga", "std"][..],
            "No 'PCI' bus found for device 'VGA'",
        ),
    ] {
        let o = run(
            Command::new(vmm())
                .arg("-nodefaults")
                .args(args)
                .arg("-kernel")
                .arg(&guest),
            T,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // `-vga none` and `romfile=` (no ROM) boot as without.
    let o = run(
        Command::new(vmm())
            .args([
                "-nodefaults",
                "-serial",
                "stdio",
                "-vga",
                "none",
                "-device",
                "VGA,romfile=",
                "-kernel",
            ])
            .arg(&guest),
        T,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bochs_display_options_as_qemu() {
    let guest = Guest::Hello.path();
    for (device, message) in [
        ("bochs-display,vgamem=1M", "video memory too small"),
        ("bochs-display,vgamem=512M", "video memory too big"),
        ("bochs-display,vgamem=lots", "not a size"),
        ("bochs-display,foo=1", "foo"),
    ] {
        let o = run(
            Command::new(vmm())
                .args(["-nodefaults", "-device", device, "-kernel"])
                .arg(&guest),
            T,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{device}: {err}");
        assert!(err.contains(message), "{device}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{device}: {err}");
    }
    let o = run(
        Command::new(vmm())
            .args([
                "-M",
                "microvm",
                "-nodefaults",
                "-device",
                "bochs-display",
                "-kernel",
            ])
            .arg(&guest),
        T,
    );
    assert_eq!(o.status.code(), Some(1));
}

/// An RFB client that stays connected (raw encoding, the server's 32-bit
/// format), to see incremental updates.
struct Client(std::os::unix::net::UnixStream);

/// One rectangle of an update: x, y, w, h and its pixels (XRGB, LE).
type Rect = (usize, usize, usize, usize, Vec<u8>);

impl Client {
    fn connect(sock: &Path) -> Self {
        use rvirt_testkit::read_exact;
        let mut c = poll("the VNC socket", T, || {
            std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())
        });
        assert_eq!(read_exact(&mut c, 12, T), b"RFB 003.008\n");
        c.write_all(b"RFB 003.008\n").unwrap();
        assert_eq!(read_exact(&mut c, 2, T), [1, 1]);
        c.write_all(&[1]).unwrap();
        assert_eq!(read_exact(&mut c, 4, T), [0, 0, 0, 0]);
        c.write_all(&[1]).unwrap();
        let init = read_exact(&mut c, 24, T);
        assert_eq!(&init[..4], &[3, 32, 2, 88], "800x600");
        let name = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
        read_exact(&mut c, name, T);
        Client(c)
    }

    fn request(&mut self, incremental: bool) {
        let mut m = vec![3, u8::from(incremental), 0, 0, 0, 0];
        m.extend_from_slice(&(W as u16).to_be_bytes());
        m.extend_from_slice(&(H as u16).to_be_bytes());
        self.0.write_all(&m).unwrap();
    }

    /// The next update, if one starts within `within`.
    fn update(&mut self, within: Duration) -> Option<Vec<Rect>> {
        use rvirt_testkit::read_exact;
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call, of a socket we own.
        let n = unsafe { libc::poll(&mut fd, 1, within.as_millis() as i32) };
        if n <= 0 {
            return None;
        }
        let head = read_exact(&mut self.0, 4, T);
        assert_eq!(head[0], 0, "a FramebufferUpdate");
        let n = u16::from_be_bytes([head[2], head[3]]);
        let mut rects = Vec::new();
        for _ in 0..n {
            let r = read_exact(&mut self.0, 12, T);
            let f = |i: usize| usize::from(u16::from_be_bytes([r[i], r[i + 1]]));
            assert_eq!(&r[8..12], &[0, 0, 0, 0], "raw");
            let (x, y, w, h) = (f(0), f(2), f(4), f(6));
            rects.push((x, y, w, h, read_exact(&mut self.0, w * h * 4, T)));
        }
        Some(rects)
    }
}

#[test]
fn incremental_updates_carry_only_the_rows_the_guest_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vnc");
    let guest = Guest::Display.path();
    let mut cmd = Command::new(vmm());
    // Confined as rvirtd runs it: the refresh thread's filter must let it
    // read the dirty log.
    cmd.args(["-M", "pc", "-m", "128", "-nodefaults", "-serial", "stdio"])
        .args(["-sandbox", "on", "-device", "bochs-display", "-vnc"])
        .arg(format!("unix:{}", sock.display()))
        .arg("-kernel")
        .arg(&guest)
        .stdin(Stdio::piped());
    let mut vm = Spawned::start(die_with_test(&mut cmd));
    let next = |vm: &mut Spawned, line: &str| {
        vm.stdin().write_all(b"\n").unwrap();
        vm.stdin().flush().unwrap();
        vm.line_with(line, T);
    };
    vm.line_with("DRAWN", T);
    let mut c = Client::connect(&sock);
    c.request(false);
    let full = c.update(T).expect("the first update");
    assert_eq!(full.len(), 1);
    let (x, y, w, h, px) = &full[0];
    assert_eq!((*x, *y, *w, *h), (0, 0, W, H));
    // Red at the top left (XRGB little-endian: B, G, R, X).
    assert_eq!(&px[..3], &[0, 0, 255]);

    // The BAR moves: the slot is new, so everything is sent again; then
    // the screen is quiet (a pending request stays unanswered).
    next(&mut vm, "REFUSED");
    let quiet = (0..20).any(|_| {
        c.request(true);
        c.update(Duration::from_millis(1000)).is_none()
    });
    assert!(quiet, "the screen never stops changing");
    // The stripe over rows 300-319: only the rows its pages hold come
    // (a 4 KiB page spans about 1.3 rows of 3200 bytes).
    next(&mut vm, "MOVED");
    // The first update may come while the guest is still drawing; the
    // rest of the stripe follows in the next ones, until the screen is
    // quiet again. Applied to the full frame, they must give the stripe.
    let mut frame = full[0].4.clone();
    let mut rows = std::collections::BTreeSet::new();
    let mut update = c.update(T).expect("an update for the stripe");
    for _ in 0..20 {
        for (x, y, w, h, px) in &update {
            assert_eq!((*x, *w), (0, W), "full-width rows");
            assert!(*y >= 298 && y + h <= 322, "rows {y}..{}", y + h);
            rows.extend(*y..y + h);
            frame[y * W * 4..(y + h) * W * 4].copy_from_slice(px);
        }
        c.request(true);
        match c.update(Duration::from_millis(1000)) {
            Some(u) => update = u,
            None => break,
        }
    }
    assert!((300..320).all(|r| rows.contains(&r)), "{rows:?}");
    for y in 300..320 {
        let row = &frame[y * W * 4..(y + 1) * W * 4];
        assert!(row.chunks(4).all(|p| p[..3] == [0, 0, 0]), "row {y}");
    }
    next(&mut vm, "DONE");
    assert!(vm.wait(T).success());
}

/// A boot sector that prints a line through the VGA BIOS (int 10h,
/// teletype), then `SHOT` on COM1 for the test, and halts; on a 1 MiB
/// disk (SeaBIOS wants more than a few sectors). Hand-assembled: 16-bit
/// code at 0x7C00, the message after it.
fn int10_disk(dir: &Path) -> std::path::PathBuf {
    let msg = b"Hello from int 10h, through the VGA BIOS\r\n\0";
    let mut code = vec![
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0, 0,    // mov si, msg (patched below)
        0xac, // 1: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x09, // jz 2f
        0xb4, 0x0e, // mov ah, 0x0e (teletype)
        0xbb, 0x07, 0x00, // mov bx, 7 (page 0, grey)
        0xcd, 0x10, // int 0x10
        0xeb, 0xf2, // jmp 1b
        0xba, 0xf8, 0x03, // 2: mov dx, 0x3f8
    ];
    for c in b"\nSHOT\n" {
        code.extend([0xb0, *c, 0xee]); // mov al, c; out dx, al
    }
    code.extend([0xfa, 0xf4, 0xeb, 0xfd]); // cli; 3: hlt; jmp 3b
    let at = 0x7c00 + code.len() as u16;
    code[5..7].copy_from_slice(&at.to_le_bytes());
    let mut img = vec![0u8; 1 << 20];
    img[..code.len()].copy_from_slice(&code);
    img[code.len()..code.len() + msg.len()].copy_from_slice(msg);
    img[510] = 0x55;
    img[511] = 0xaa;
    let p = dir.join("int10.img");
    std::fs::write(&p, img).unwrap();
    p
}

/// A boot sector that sets mode 12h (640x480, 16 colours in four planes)
/// through int 10h, draws a 200-pixel line of colour 14 at row 100 with
/// int 10h's write-pixel call and prints a line with the teletype call
/// (the VGA BIOS draws its glyphs into the planes), then `SHOT` on COM1.
fn mode12_disk(dir: &Path) -> std::path::PathBuf {
    let msg = b"Mode 12h through int 10h\r\n\0";
    let mut code = vec![
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xb8, 0x12, 0x00, // mov ax, 0x0012 (set mode 12h)
        0xcd, 0x10, // int 0x10
        0xb9, 0x00, 0x00, // mov cx, 0 (x)
        0xb8, 0x0e, 0x0c, // 1: mov ax, 0x0c0e (write pixel, colour 14)
        0xbb, 0x00, 0x00, // mov bx, 0 (page)
        0xba, 0x64, 0x00, // mov dx, 100 (y)
        0xcd, 0x10, // int 0x10
        0x41, // inc cx
        0x81, 0xf9, 0xc8, 0x00, // cmp cx, 200
        0x72, 0xee, // jb 1b
        0xbe, 0, 0,    // mov si, msg (patched below)
        0xac, // 2: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x09, // jz 3f
        0xb4, 0x0e, // mov ah, 0x0e (teletype)
        0xbb, 0x0f, 0x00, // mov bx, 15 (white)
        0xcd, 0x10, // int 0x10
        0xeb, 0xf2, // jmp 2b
        0xba, 0xf8, 0x03, // 3: mov dx, 0x3f8
    ];
    for c in b"\nSHOT\n" {
        code.extend([0xb0, *c, 0xee]);
    }
    code.extend([0xfa, 0xf4, 0xeb, 0xfd]);
    let at = 0x7c00 + code.len() as u16;
    code[31..33].copy_from_slice(&at.to_le_bytes());
    let mut img = vec![0u8; 1 << 20];
    img[..code.len()].copy_from_slice(&code);
    img[code.len()..code.len() + msg.len()].copy_from_slice(msg);
    img[510] = 0x55;
    img[511] = 0xaa;
    let p = dir.join("mode12.img");
    std::fs::write(&p, img).unwrap();
    p
}

/// Boots `disk` through SeaBIOS with `-device VGA` under `program` and
/// captures the screen once the boot sector printed its line (under QEMU
/// 4 s later: its VNC refresh slows to 3 s while the screen is idle, so a
/// capture at once may predate the guest's last writes).
fn vga_boot_screen(
    program: &Path,
    machine: &str,
    extra: &[&str],
    disk: &Path,
    dir: &Path,
    name: &str,
) -> Image {
    let sock = dir.join(format!("{name}.vnc"));
    let mut cmd = Command::new(program);
    cmd.args(["-M", machine, "-accel", "kvm", "-m", "128", "-nodefaults"])
        .args(extra)
        .args(["-serial", "stdio", "-vnc"])
        .arg(format!("unix:{}", sock.display()))
        .args(["-device", "VGA", "-drive"])
        .arg(format!("file={},format=raw,if=none,id=d0", disk.display()))
        .args(["-device", "virtio-blk-pci,drive=d0,bootindex=1"])
        .stdin(Stdio::null());
    let mut vm = Spawned::start(die_with_test(&mut cmd));
    vm.line_with("SHOT", T);
    if !extra.is_empty() {
        std::thread::sleep(Duration::from_secs(4));
    }
    let shot = capture(&sock, &dir.join(format!("{name}.ppm")));
    vm.kill();
    shot
}

/// The pixels in which two captures of one size differ.
fn differing(a: &Image, b: &Image) -> Vec<(usize, usize)> {
    assert_eq!((a.0, a.1), (b.0, b.1), "size");
    a.2.chunks(3)
        .zip(b.2.chunks(3))
        .enumerate()
        .filter(|(_, (p, q))| p != q)
        .map(|(i, _)| (i % a.0, i / a.0))
        .collect()
}

#[test]
fn seabios_and_the_vga_bios_show_text_mode_as_on_qemu() {
    if !have_vncdotool() {
        return;
    }
    let bios = Path::new("/usr/share/seabios/vgabios-stdvga.bin");
    if !bios.exists() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!(
                "{} is required (RVIRT_REQUIRE_REFERENCE is set)",
                bios.display()
            );
        }
        eprintln!("skipped: no VGA BIOS");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = int10_disk(dir.path());
    let have_qemu = which("qemu-system-x86_64").is_some();
    if !have_qemu && std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
        panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
    }
    for machine in ["pc", "q35"] {
        let ours = vga_boot_screen(
            &vmm(),
            machine,
            &[],
            &disk,
            dir.path(),
            &format!("rvirt-{machine}"),
        );
        // Text mode 3: 80x25 cells of 9x16 dots. SeaBIOS's banner, its
        // boot line and the boot sector's line are on rows 0-2, grey on
        // black; the fourth row holds only the cursor.
        assert_eq!((ours.0, ours.1), (720, 400), "{machine}");
        let lit = |rows: std::ops::Range<usize>| {
            ours.2[rows.start * 720 * 3..rows.end * 720 * 3]
                .chunks(3)
                .filter(|p| *p == [0xa8, 0xa8, 0xa8])
                .count()
        };
        for row in 0..3 {
            assert!(
                lit(row * 16..row * 16 + 16) > 400,
                "{machine}: text row {row} is empty"
            );
        }
        assert!(
            lit(64..400) <= 18,
            "{machine}: more than the cursor below the text"
        );
        if !have_qemu {
            eprintln!("QEMU not installed: the comparison did not run");
            continue;
        }
        let theirs = vga_boot_screen(
            Path::new("qemu-system-x86_64"),
            machine,
            &["-display", "none"],
            &disk,
            dir.path(),
            &format!("qemu-{machine}"),
        );
        // Only the cursor may differ: it blinks, and the two captures
        // need not fall in the same phase (2 lines of 9 dots, in the
        // fourth row's first cell).
        let d = differing(&ours, &theirs);
        assert!(
            d.len() <= 18 && d.iter().all(|&(x, y)| x < 9 && (48..64).contains(&y)),
            "{machine}: {} pixels differ from QEMU's, first {:?}",
            d.len(),
            &d[..d.len().min(10)]
        );
    }
}

/// The display guest's text step (display.c's `glyph_row` and
/// `TEXT_LINE`): mode 3's 720x400, the line grey on black at row 1.
fn expected_text() -> Image {
    let line = b"rvirt std VGA: text mode 3";
    let glyph_row = |c: u8, y: usize| -> u8 {
        if c == b' ' || !(2..14).contains(&y) {
            0
        } else {
            c.rotate_left((y & 7) as u32)
        }
    };
    let (w, h) = (720, 400);
    let mut px = vec![0u8; w * h * 3];
    for (col, &c) in line.iter().enumerate() {
        for y in 0..16 {
            let bits = glyph_row(c, y);
            for x in 0..8 {
                if bits & (0x80 >> x) != 0 {
                    let at = ((16 + y) * w + col * 9 + x) * 3;
                    px[at..at + 3].copy_from_slice(&[0xa8; 3]);
                }
            }
        }
    }
    (w, h, px)
}

/// The same guest on `-device VGA` (direct kernel boot: no BIOS runs):
/// DISPI through BAR 2 as on bochs-display, then VGA text mode programmed
/// by the guest, with its own font, through the legacy ports and the
/// 0xA0000 window; against QEMU 7.2 but for step 2 (QEMU's std VGA
/// clamps an impossible mode to the memory and shows it; rvirt keeps the
/// last good one, as for bochs-display).
#[test]
fn std_vga_draws_through_dispi_then_shows_text_mode() {
    if !have_vncdotool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let names = ["DRAWN", "REFUSED", "MOVED", "TEXT"];
    for machine in ["pc", "q35"] {
        let args = ["-device", "VGA,romfile="];
        let ours = steps_of(
            &vmm(),
            machine,
            &args,
            dir.path(),
            &format!("rvirt-{machine}"),
            &names,
        );
        assert_same("after drawing", &ours[0], &expected(false));
        assert_same("after an impossible mode", &ours[1], &expected(false));
        assert_same("drawn through the moved BAR", &ours[2], &expected(true));
        assert_same("text mode", &ours[3], &expected_text());
        if which("qemu-system-x86_64").is_none() {
            if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
                panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
            }
            eprintln!("QEMU not installed: the comparison did not run");
            return;
        }
        let mut q = vec!["-display", "none"];
        q.extend(args);
        let theirs = steps_of(
            Path::new("qemu-system-x86_64"),
            machine,
            &q,
            dir.path(),
            &format!("qemu-{machine}"),
            &names,
        );
        for i in [0, 2, 3] {
            assert_same(
                &format!("{machine} step {i}: rvirt against QEMU"),
                &ours[i],
                &theirs[i],
            );
        }
    }
}

/// Mode 12h set and drawn through the VGA BIOS: the planar graphics
/// mode drawn from the four planes, as QEMU 7.2 draws it, pixel for
/// pixel.
#[test]
fn the_vga_bios_draws_mode_12h_as_on_qemu() {
    if !have_vncdotool() || !Path::new("/usr/share/seabios/vgabios-stdvga.bin").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = mode12_disk(dir.path());
    let ours = vga_boot_screen(&vmm(), "pc", &[], &disk, dir.path(), "rvirt-12h");
    assert_eq!((ours.0, ours.1), (640, 480));
    let px = |x: usize, y: usize| &ours.2[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3];
    let line = px(0, 100).to_vec();
    assert_ne!(line, [0, 0, 0], "the line is drawn");
    assert!((0..200).all(|x| px(x, 100) == line), "the whole line");
    assert_eq!(px(200, 100), [0, 0, 0]);
    assert_eq!(px(0, 99), [0, 0, 0]);
    let text = (0..16 * 640)
        .filter(|i| ours.2[i * 3..i * 3 + 3] != [0, 0, 0])
        .count();
    assert!(text > 300, "the line of text: {text} pixels lit");
    if which("qemu-system-x86_64").is_none() {
        if std::env::var_os("RVIRT_REQUIRE_REFERENCE").is_some() {
            panic!("qemu-system-x86_64 is required (RVIRT_REQUIRE_REFERENCE is set)");
        }
        return;
    }
    let theirs = vga_boot_screen(
        Path::new("qemu-system-x86_64"),
        "pc",
        &["-display", "none"],
        &disk,
        dir.path(),
        "qemu-12h",
    );
    assert_same("mode 12h: rvirt against QEMU", &ours, &theirs);
}
