//! Images created here, checked by reading them back and, where QEMU's
//! tools are installed, by `qemu-img info` and `qemu-img check`.

use super::*;
use std::process::Command;

fn qemu_img(args: &[&str]) -> Option<String> {
    let out = Command::new("qemu-img").args(args).output().ok()?;
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn opts(format: ImageFormat, capacity: u64) -> CreateOptions {
    CreateOptions {
        format,
        capacity,
        prealloc: Prealloc::Off,
        backing: None,
    }
}

#[test]
fn raw_images_sparse_or_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("s.img");
    create(&sparse, &opts(ImageFormat::Raw, 10 << 20)).unwrap();
    let i = inspect(&sparse).unwrap();
    assert_eq!(
        (i.format, i.capacity, i.physical),
        (ImageFormat::Raw, 10 << 20, 10 << 20)
    );
    assert!(i.allocation < 1 << 20, "{i:?}");
    let full = dir.path().join("f.img");
    let mut o = opts(ImageFormat::Raw, 4 << 20);
    o.prealloc = Prealloc::Full;
    create(&full, &o).unwrap();
    assert!(inspect(&full).unwrap().allocation >= 4 << 20);
    // Never over an existing file.
    assert!(matches!(create(&full, &o), Err(ImageError::Create(..))));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&full).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn qcow2_with_a_backing_file_as_qemu_img_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    create(&base, &opts(ImageFormat::Qcow2, 20 << 20)).unwrap();
    let top = dir.path().join("top.qcow2");
    let mut o = opts(ImageFormat::Qcow2, 30 << 20);
    o.backing = Some((base.to_string_lossy().into_owned(), ImageFormat::Qcow2));
    create(&top, &o).unwrap();
    let i = inspect(&top).unwrap();
    assert_eq!(i.format, ImageFormat::Qcow2);
    assert_eq!(i.capacity, 30 << 20);
    let b = i.backing.unwrap();
    assert_eq!(b.path_from(&top), base);
    assert_eq!(b.format.as_deref(), Some("qcow2"));
    let Some(info) = qemu_img(&["info", "--output=json", top.to_str().unwrap()]) else {
        return;
    };
    assert!(info.contains("\"virtual-size\": 31457280"), "{info}");
    assert!(
        info.contains(&format!("\"backing-filename\": \"{}\"", base.display())),
        "{info}"
    );
    assert!(
        info.contains("\"backing-filename-format\": \"qcow2\""),
        "{info}"
    );
    qemu_img(&["check", top.to_str().unwrap()]).unwrap();
    qemu_img(&["check", base.to_str().unwrap()]).unwrap();
}

#[test]
fn metadata_preallocation_and_resize() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.qcow2");
    let mut o = opts(ImageFormat::Qcow2, 8 << 20);
    o.prealloc = Prealloc::Metadata;
    create(&p, &o).unwrap();
    resize(&p, 16 << 20, false, false).unwrap();
    assert_eq!(inspect(&p).unwrap().capacity, 16 << 20);
    assert!(matches!(
        resize(&p, 4 << 20, false, false),
        Err(ImageError::Shrink { .. })
    ));
    let r = dir.path().join("r.img");
    create(&r, &opts(ImageFormat::Raw, 1 << 20)).unwrap();
    resize(&r, 3 << 20, false, true).unwrap();
    assert_eq!(inspect(&r).unwrap().capacity, 3 << 20);
    resize(&r, 2 << 20, true, false).unwrap();
    assert_eq!(inspect(&r).unwrap().capacity, 2 << 20);
    if let Some(info) = qemu_img(&["info", "--output=json", p.to_str().unwrap()]) {
        assert!(info.contains("\"virtual-size\": 16777216"), "{info}");
        qemu_img(&["check", p.to_str().unwrap()]).unwrap();
    }
}

#[test]
fn a_copy_reads_through_the_chain_and_stays_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.img");
    create(&base, &opts(ImageFormat::Raw, 4 << 20)).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(&base).unwrap();
        f.write_all_at(b"hello from the base", 3 << 20).unwrap();
    }
    let top = dir.path().join("top.qcow2");
    let mut o = opts(ImageFormat::Qcow2, 4 << 20);
    o.backing = Some(("base.img".into(), ImageFormat::Raw));
    create(&top, &o).unwrap();
    for (name, format) in [("c.img", ImageFormat::Raw), ("c.qcow2", ImageFormat::Qcow2)] {
        let dst = dir.path().join(name);
        copy(&top, &dst, &opts(format, 0)).unwrap();
        let i = inspect(&dst).unwrap();
        assert_eq!((i.format, i.capacity, &i.backing), (format, 4 << 20, &None));
        // One chunk of data (and qcow2's metadata) out of four.
        assert!(i.allocation < 2 << 20, "{name} is not sparse: {i:?}");
        if format == ImageFormat::Raw {
            let data = std::fs::read(&dst).unwrap();
            assert_eq!(&data[3 << 20..(3 << 20) + 19], b"hello from the base");
        } else if qemu_img(&["check", dst.to_str().unwrap()]).is_some() {
            qemu_img(&[
                "compare",
                "-f",
                "qcow2",
                "-F",
                "raw",
                dst.to_str().unwrap(),
                base.to_str().unwrap(),
            ])
            .unwrap();
        }
    }
    // A copy that cannot be made leaves nothing.
    let missing = dir.path().join("none.img");
    assert!(copy(
        &missing,
        &dir.path().join("x.img"),
        &opts(ImageFormat::Raw, 0)
    )
    .is_err());
    assert!(!dir.path().join("x.img").exists());
}

#[test]
fn garbage_is_raw_and_a_broken_qcow2_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g");
    std::fs::write(&p, b"QFI").unwrap();
    assert_eq!(probe_format(&p).unwrap(), ImageFormat::Raw);
    std::fs::write(&p, b"QFI\xfb\x00\x00\x00\x07garbage").unwrap();
    let e = inspect(&p).unwrap_err();
    assert!(matches!(e, ImageError::Open(..)), "{e}");
    assert!(e.to_string().contains(p.to_str().unwrap()));
}
