//! Fuzzes rvirt's qcow2 path: the input is a qcow2 image (after a short
//! script of requests), opened through imago with nothing below it
//! (`backing: null`, so no header can make the target open another file)
//! and served on the sync engine. Any image must be refused or served,
//! never a panic or a hang; requests on a served image may fail.
#![no_main]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rvirt_block::{
    AioMode, Backing, Disk, ImageFormat, ImageSpec, IoBuf, Op, OpenOptions, Range, Request,
};

/// Script bytes before the image: 8 requests of (kind, sector).
const SCRIPT: usize = 16;

/// The image file, in memory, one per process: unlinked at once (so no
/// run leaves it behind) and reopened by the disk through /proc.
fn path() -> &'static (File, PathBuf) {
    static P: OnceLock<(File, PathBuf)> = OnceLock::new();
    P.get_or_init(|| {
        let name = format!("/dev/shm/rvirt-fuzz-qcow2-{}", std::process::id());
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&name)
            .unwrap();
        std::fs::remove_file(&name).unwrap();
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        (file, path)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < SCRIPT {
        return;
    }
    let (script, image) = data.split_at(SCRIPT);
    let (file, path) = path();
    file.set_len(0).unwrap();
    file.write_all_at(image, 0).unwrap();
    let spec = ImageSpec {
        path: path.clone(),
        format: ImageFormat::Qcow2,
        read_only: script[0] & 1 == 1,
        backing: Backing::None,
    };
    let opts = OpenOptions {
        aio: AioMode::Sync,
        discard: true,
        write_cache: script[0] & 2 == 0,
        ..OpenOptions::default()
    };
    let Ok(mut disk) = Disk::<usize>::open_image(&spec, &opts) else {
        return;
    };
    let len = disk.len().unwrap_or(0);
    let _ = disk.chain();
    let mut buf = vec![0x5au8; 4096];
    for (i, step) in script[1..].chunks(2).enumerate() {
        let [kind, at] = [step[0], step.get(1).copied().unwrap_or(0)];
        // Mostly inside the disk, sometimes across its end.
        let offset = (u64::from(at) * 512 * 17) % (len.max(1) + 4096);
        let n = 512 * (1 + usize::from(kind >> 4) % 8);
        // SAFETY: `buf` outlives the request, which the sync engine runs
        // before `submit` returns.
        let io = vec![unsafe { IoBuf::new(buf.as_mut_ptr(), n) }];
        let op = match kind % 5 {
            0 => Op::Read { offset, bufs: io },
            1 => Op::Write { offset, bufs: io },
            2 => Op::Discard(vec![Range {
                offset,
                len: n as u64,
            }]),
            3 => Op::WriteZeroes(vec![Range {
                offset,
                len: n as u64,
            }]),
            _ => Op::Flush,
        };
        let done = disk.submit(Request { tag: i, op });
        assert!(done.is_some(), "the sync engine runs requests inline");
    }
});
