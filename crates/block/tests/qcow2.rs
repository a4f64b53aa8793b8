//! qcow2 through rvirt's block layer, with qemu-img as the oracle.
//!
//! A property test drives writes (alone and in batches the engines merge),
//! discards, write-zeroes and flushes through a qcow2 disk on every engine
//! while mirroring them into memory, over cluster sizes from 512 B to
//! 2 MiB, refcount widths from 1 to 64 bits, chains up to two overlays
//! deep over a base that may be compressed (`qemu-img convert -c`); every
//! byte read back must match, then `qemu-img check` must find the image
//! clean, `qemu-img compare` must find it identical to the mirror, and the
//! images below must be unchanged. Other tests: what is refused and how it
//! is named, `"backing": null` opening nothing else, the chain as a
//! monitor shows it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rvirt_block::{
    AioMode, Backing, Disk, Done, ImageFormat, ImageSpec, IoBuf, Op, OpenOptions, Range, Request,
};

/// The virtual disk of every image here.
const SIZE: u64 = 8 << 20;
const LIMIT: Duration = Duration::from_secs(60);

fn qemu_img(args: &[&str]) -> std::process::Output {
    rvirt_testkit::run(Command::new("qemu-img").args(args), LIMIT)
}

fn qemu_img_ok(args: &[&str]) -> String {
    let out = qemu_img(args);
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Submits `ops` in one batch and waits for all of them.
fn run(disk: &mut Disk<usize>, ops: Vec<Op>) -> Vec<io::Result<()>> {
    let n = ops.len();
    let mut out: Vec<Option<io::Result<()>>> = (0..n).map(|_| None).collect();
    let mut done: Vec<Done<usize>> = Vec::new();
    for (tag, op) in ops.into_iter().enumerate() {
        if let Some(d) = disk.submit(Request { tag, op }) {
            done.push(d);
        }
    }
    disk.commit();
    let deadline = Instant::now() + LIMIT;
    loop {
        for d in done.drain(..) {
            out[d.tag] = Some(d.result);
        }
        if out.iter().all(Option::is_some) {
            break;
        }
        assert!(Instant::now() < deadline, "requests never completed");
        if let Some(fd) = disk.host_fd() {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, a live local.
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
        disk.reap(&mut done);
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn buf(v: &mut [u8]) -> IoBuf {
    // SAFETY: every caller keeps `v` alive and untouched until the request
    // using it is done (`run` waits for it).
    unsafe { IoBuf::new(v.as_mut_ptr(), v.len()) }
}

/// Reads the whole disk and compares it with `mirror`.
fn check_reads(disk: &mut Disk<usize>, mirror: &[u8]) {
    let chunk = 1 << 20;
    let mut got = vec![0u8; chunk];
    for at in (0..mirror.len()).step_by(chunk) {
        let op = Op::Read {
            offset: at as u64,
            bufs: vec![buf(&mut got)],
        };
        run(disk, vec![op]).pop().unwrap().unwrap();
        if got[..] != mirror[at..at + chunk] {
            let i = (0..chunk).find(|&i| got[i] != mirror[at + i]).unwrap();
            panic!(
                "byte {} reads {:#x}, wrote {:#x}",
                at + i,
                got[i],
                mirror[at + i]
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// Writes of (sector, sectors, fill seed), submitted as one batch when
    /// they do not overlap.
    Writes(Vec<(u64, u64, u8)>),
    Discard(u64, u64),
    Zeroes(u64, u64),
    Flush,
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    let sectors = SIZE / 512;
    (0..sectors).prop_flat_map(move |start| {
        let max = (sectors - start).min(1024);
        (Just(start), 1..=max)
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        5 => prop::collection::vec((range(), any::<u8>()), 1..5)
            .prop_map(|w| Action::Writes(w.into_iter().map(|((a, n), f)| (a, n, f)).collect())),
        1 => range().prop_map(|(a, n)| Action::Discard(a, n)),
        1 => range().prop_map(|(a, n)| Action::Zeroes(a, n)),
        1 => Just(Action::Flush),
    ]
}

fn fill(seed: u8, sector: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let pos = sector * 512 + i as u64;
        *b = seed ^ (pos / 512) as u8 ^ (pos as u8).wrapping_mul(13) | 1;
    }
}

fn overlaps(w: &[(u64, u64, u8)]) -> bool {
    w.iter().enumerate().any(|(i, a)| {
        w[i + 1..]
            .iter()
            .any(|b| a.0 < b.0 + b.1 && b.0 < a.0 + a.1)
    })
}

/// Applies `actions` to the disk and the mirror.
fn apply(disk: &mut Disk<usize>, mirror: &mut [u8], actions: &[Action]) {
    for a in actions {
        match a {
            Action::Writes(w) => {
                let mut data: Vec<Vec<u8>> = w
                    .iter()
                    .map(|&(at, n, seed)| {
                        let mut v = vec![0u8; (n * 512) as usize];
                        fill(seed, at, &mut v);
                        v
                    })
                    .collect();
                let ops: Vec<Op> = w
                    .iter()
                    .zip(data.iter_mut())
                    .map(|(&(at, _, _), v)| Op::Write {
                        offset: at * 512,
                        bufs: vec![buf(v)],
                    })
                    .collect();
                if overlaps(w) {
                    for op in ops {
                        run(disk, vec![op]).pop().unwrap().unwrap();
                    }
                } else {
                    for r in run(disk, ops) {
                        r.unwrap();
                    }
                }
                for (&(at, _, _), v) in w.iter().zip(&data) {
                    let at = (at * 512) as usize;
                    mirror[at..at + v.len()].copy_from_slice(v);
                }
            }
            &Action::Discard(at, n) | &Action::Zeroes(at, n) => {
                let r = vec![Range {
                    offset: at * 512,
                    len: n * 512,
                }];
                let op = if matches!(a, Action::Discard(..)) {
                    Op::Discard(r)
                } else {
                    Op::WriteZeroes(r)
                };
                run(disk, vec![op]).pop().unwrap().unwrap();
                // A qcow2 discard reads back as zeroes.
                let at = (at * 512) as usize;
                mirror[at..at + (n * 512) as usize].fill(0);
            }
            Action::Flush => run(disk, vec![Op::Flush]).pop().unwrap().unwrap(),
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    cluster_bits: u32,
    refcount_bits: u32,
    compressed: bool,
    depth: usize,
    aio: AioMode,
    direct: bool,
    write_cache: bool,
    /// Per layer, from the base up: what is written there.
    layers: Vec<Vec<Action>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![9u32, 12, 16, 21]),
        // 64-bit refcounts are refused for writing (see below).
        prop::sample::select(vec![1u32, 4, 16]),
        any::<bool>(),
        0usize..=2,
        prop::sample::select(vec![AioMode::Sync, AioMode::Threads, AioMode::IoUring]),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(action(), 1..10), 3),
    )
        .prop_map(
            |(cluster_bits, refcount_bits, compressed, depth, aio, direct, write_cache, layers)| {
                Case {
                    cluster_bits,
                    refcount_bits,
                    compressed,
                    depth,
                    aio,
                    direct,
                    write_cache,
                    layers,
                }
            },
        )
}

/// The base's data: stripes of data and of zeroes (left unallocated).
fn base_data() -> Vec<u8> {
    let mut v = vec![0u8; SIZE as usize];
    for (i, chunk) in v.chunks_mut(192 * 1024).enumerate() {
        if i % 3 != 1 {
            let sector = (i * 192 * 1024 / 512) as u64;
            fill(0x5a, sector, chunk);
        }
    }
    v
}

fn opts(c: &Case) -> OpenOptions {
    OpenOptions {
        direct: c.direct,
        write_cache: c.write_cache,
        discard: true,
        aio: c.aio,
        ..OpenOptions::default()
    }
}

fn run_case(c: &Case) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let cluster = (1u64 << c.cluster_bits).to_string();
    let o = format!("cluster_size={cluster},refcount_bits={}", c.refcount_bits);
    let mut mirror = base_data();
    let raw = d.join("base.raw");
    std::fs::write(&raw, &mirror).unwrap();
    let base = d.join("base.qcow2");
    let mut args = vec!["convert", "-O", "qcow2", "-o", &o];
    if c.compressed {
        args.push("-c");
    }
    args.extend([s(&raw), s(&base)]);
    qemu_img_ok(&args);

    // Each layer gets its writes while it is the top, then the next
    // overlay goes on it; the chain is followed from the headers.
    let mut images = vec![base.clone()];
    for layer in 0..=c.depth {
        let top = images.last().unwrap().clone();
        let below: Vec<Vec<u8>> = images[..layer]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let spec = ImageSpec {
            path: top.clone(),
            format: ImageFormat::Qcow2,
            read_only: false,
            backing: Backing::FromImage,
        };
        let mut disk: Disk<usize> = Disk::open_image(&spec, &opts(c)).unwrap();
        assert_eq!(disk.len().unwrap(), SIZE);
        apply(&mut disk, &mut mirror, &c.layers[layer]);
        check_reads(&mut disk, &mirror);
        drop(disk);
        let check = qemu_img(&["check", s(&top)]);
        assert!(
            check.status.success(),
            "qemu-img check {}: {}",
            top.display(),
            String::from_utf8_lossy(&check.stdout)
        );
        let m = d.join("mirror.raw");
        std::fs::write(&m, &mirror).unwrap();
        let cmp = qemu_img_ok(&["compare", "-f", "qcow2", "-F", "raw", s(&top), s(&m)]);
        assert!(cmp.contains("Images are identical"), "{cmp}");
        for (p, before) in images[..layer].iter().zip(below) {
            assert!(
                std::fs::read(p).unwrap() == before,
                "{} changed",
                p.display()
            );
        }
        if layer < c.depth {
            let next = d.join(format!("overlay{layer}.qcow2"));
            qemu_img_ok(&[
                "create",
                "-f",
                "qcow2",
                "-o",
                &o,
                "-b",
                s(&top),
                "-F",
                "qcow2",
                s(&next),
            ]);
            images.push(next);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn qcow2_matches_a_raw_mirror(c in case()) {
        run_case(&c);
    }
}

fn spec(path: &Path, backing: Backing) -> ImageSpec {
    ImageSpec {
        path: path.to_path_buf(),
        format: ImageFormat::Qcow2,
        read_only: false,
        backing,
    }
}

fn open(spec: &ImageSpec) -> Result<Disk<usize>, rvirt_block::OpenError> {
    Disk::open_image(spec, &OpenOptions::default())
}

/// The error and its sources, as a VMM prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        s += &format!(": {e}");
        src = e.source();
    }
    s
}

/// A qcow2 overlay on `base`; with `fmt` None, one whose header names no
/// backing format (as old qemu-img made them: today's refuses to, so the
/// format extension is renamed to an unknown, ignored one).
fn overlay_on(d: &Path, base: &Path, name: &str, fmt: Option<&str>) -> PathBuf {
    let p = d.join(name);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        s(base),
        "-F",
        fmt.unwrap_or("raw"),
        s(&p),
    ]);
    if fmt.is_none() {
        let mut h = std::fs::read(&p).unwrap();
        let at = h
            .windows(4)
            .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
            .expect("a backing format extension");
        h[at..at + 4].copy_from_slice(&[0x72, 0x76, 0x69, 0x72]);
        std::fs::write(&p, h).unwrap();
        let info = qemu_img_ok(&["info", s(&p)]);
        assert!(!info.contains("backing file format"), "{info}");
    }
    p
}

#[test]
fn backing_null_opens_nothing_else_and_the_header_is_followed_only_with_a_format() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let base = d.join("base.raw");
    std::fs::write(&base, vec![0xabu8; SIZE as usize]).unwrap();
    let with_fmt = overlay_on(d, &base, "top.qcow2", Some("raw"));
    let mut buf1 = vec![0u8; 512];

    // backing: null: the base's bytes do not show, and the base is not
    // even needed (it is gone here).
    std::fs::rename(&base, d.join("elsewhere")).unwrap();
    let mut disk = open(&spec(&with_fmt, Backing::None)).unwrap();
    let read = Op::Read {
        offset: 0,
        bufs: vec![buf(&mut buf1)],
    };
    run(&mut disk, vec![read]).pop().unwrap().unwrap();
    assert!(buf1.iter().all(|&b| b == 0));
    drop(disk);

    // From the header: it must be there now.
    let e = open(&spec(&with_fmt, Backing::FromImage)).err().unwrap();
    assert!(chain(&e).contains("base.raw"), "{}", chain(&e));
    std::fs::rename(d.join("elsewhere"), &base).unwrap();
    let mut disk = open(&spec(&with_fmt, Backing::FromImage)).unwrap();
    let read = Op::Read {
        offset: 4096,
        bufs: vec![buf(&mut buf1)],
    };
    run(&mut disk, vec![read]).pop().unwrap().unwrap();
    assert!(buf1.iter().all(|&b| b == 0xab));
    let layers = disk.chain();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].format, "qcow2");
    assert_eq!(layers[0].backing_filename.as_deref(), Some(s(&base)));
    assert_eq!(layers[1].format, "raw");
    assert!(layers[1].read_only);
    drop(disk);

    // Without a format in the header, rvirt does not probe.
    let no_fmt = overlay_on(d, &base, "nofmt.qcow2", None);
    let e = open(&spec(&no_fmt, Backing::FromImage)).err().unwrap();
    let msg = chain(&e);
    assert!(
        msg.contains("nofmt.qcow2") && msg.contains("no format"),
        "{msg}"
    );
    // Named explicitly, it opens.
    let explicit = ImageSpec {
        path: base.clone(),
        format: ImageFormat::Raw,
        read_only: true,
        backing: Backing::None,
    };
    open(&spec(&no_fmt, Backing::Image(Box::new(explicit)))).unwrap();
}

#[test]
fn refused_images_name_the_image_and_the_feature() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "zstd.qcow2",
            &["-o", "compression_type=zstd"],
            "compression type",
        ),
        (
            "l2.qcow2",
            &["-o", "extended_l2=on,cluster_size=65536"],
            "extended L2",
        ),
        (
            "r64.qcow2",
            &["-o", "refcount_bits=64,cluster_size=512"],
            "64-bit refcounts",
        ),
    ];
    for (name, extra, feature) in cases {
        let p = d.join(name);
        let mut args = vec!["create", "-f", "qcow2"];
        args.extend_from_slice(extra);
        args.extend([s(&p), "8M"]);
        qemu_img_ok(&args);
        let e = open(&spec(&p, Backing::None)).err().unwrap();
        let msg = chain(&e);
        assert!(msg.contains(name) && msg.contains(feature), "{msg}");
    }
    // Dirty: the incompatible feature bit 0 set in the header, as a crash
    // with lazy refcounts leaves it.
    let p = d.join("dirty.qcow2");
    qemu_img_ok(&["create", "-f", "qcow2", s(&p), "8M"]);
    let mut h = std::fs::read(&p).unwrap();
    h[79] |= 1;
    std::fs::write(&p, h).unwrap();
    let msg = chain(&open(&spec(&p, Backing::None)).err().unwrap());
    assert!(
        msg.contains("dirty.qcow2") && msg.contains("dirty"),
        "{msg}"
    );
    // Not qcow2 at all.
    let p = d.join("junk.qcow2");
    std::fs::write(&p, vec![7u8; 4096]).unwrap();
    let msg = chain(&open(&spec(&p, Backing::None)).err().unwrap());
    assert!(msg.contains("junk.qcow2"), "{msg}");
}

#[test]
fn a_loop_in_the_chain_is_refused() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let a = d.join("a.qcow2");
    let b = d.join("b.qcow2");
    qemu_img_ok(&["create", "-f", "qcow2", s(&a), "8M"]);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        s(&a),
        "-F",
        "qcow2",
        s(&b),
        "8M",
    ]);
    qemu_img_ok(&[
        "rebase",
        "-u",
        "-f",
        "qcow2",
        "-b",
        s(&b),
        "-F",
        "qcow2",
        s(&a),
    ]);
    let msg = chain(&open(&spec(&b, Backing::FromImage)).err().unwrap());
    assert!(msg.contains("backing chain longer"), "{msg}");
}

/// Found by the `qcow2_image` fuzz target: imago 0.2 allocates whatever
/// has refcount 0, so a writable image must not leave its header or tables
/// without one (imago would overwrite them, or recurse without end placing
/// a refcount block at cluster 0). Such an image is refused for writing
/// and still served read-only, where nothing is allocated.
#[test]
fn unreferenced_metadata_is_refused_for_writing() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let be64 = |h: &[u8], at: usize| u64::from_be_bytes(h[at..at + 8].try_into().unwrap()) as usize;
    // Each damage, then what the refusal names.
    type Damage = fn(&mut Vec<u8>, usize, usize);
    let cases: [(&str, Damage, &str); 4] = [
        // A refcount table of no clusters (the fuzzer's second input).
        (
            "no-rt.qcow2",
            |h, _, _| h[56..60].fill(0),
            "the header has refcount 0",
        ),
        // No refcount block for the first clusters (the fuzzer's input:
        // the block moved to the second entry).
        (
            "no-rb0.qcow2",
            |h, rt, _| {
                let e: [u8; 8] = h[rt..rt + 8].try_into().unwrap();
                h[rt..rt + 8].fill(0);
                h[rt + 8..rt + 16].copy_from_slice(&e);
            },
            "the header has refcount 0",
        ),
        // The header's refcount (16 bits, the first in the first block).
        (
            "header.qcow2",
            |h, _, rb| h[rb..rb + 2].fill(0),
            "the header has refcount 0",
        ),
        // The refcount table's own cluster.
        (
            "rt.qcow2",
            |h, rt, rb| {
                let i = rt / 512 * 2;
                h[rb + i..rb + i + 2].fill(0)
            },
            "the refcount table has refcount 0",
        ),
    ];
    for (name, damage, what) in cases {
        let p = d.join(name);
        qemu_img_ok(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            s(&p),
            "1M",
        ]);
        let mut h = std::fs::read(&p).unwrap();
        let rt = be64(&h, 48);
        let rb = be64(&h, rt);
        damage(&mut h, rt, rb);
        std::fs::write(&p, h).unwrap();
        let msg = chain(&open(&spec(&p, Backing::None)).err().unwrap());
        assert!(msg.contains(name) && msg.contains(what), "{msg}");
        let mut disk = open(&ImageSpec {
            read_only: true,
            ..spec(&p, Backing::None)
        })
        .unwrap();
        let mut b = vec![1u8; 512];
        let read = Op::Read {
            offset: 0,
            bufs: vec![buf(&mut b)],
        };
        run(&mut disk, vec![read]).pop().unwrap().unwrap();
        assert!(b.iter().all(|&x| x == 0));
    }
}
