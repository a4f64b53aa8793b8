//! virtio-scsi on temp files and mock queues: commands to a disk and a
//! CD-ROM, bad targets and LUNs, the control queue, hostile chains.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use rvirt_block::{AioMode, RawFile};

use super::*;
use crate::test_util::*;

const REQ: u64 = DATA;
const RESP: u64 = 0x20_0000;
const BUF: u64 = 0x30_0000;
const OUT: u64 = 0x40_0000;
const BLOCKS: u64 = 64;
const REQ_LEN: u32 = 19 + 32;
const RESP_LEN: u32 = 12 + 96;

fn disk_on(bytes: &[u8], read_only: bool) -> (tempfile::NamedTempFile, Disk) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().write_all_at(bytes, 0).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(f.path())
        .unwrap();
    let disk = Disk::new(Arc::new(RawFile::new(file)), AioMode::Sync).unwrap();
    (f, disk)
}

/// Byte `i` of the disk image.
fn pattern(i: u64) -> u8 {
    (i / 512) as u8 ^ (i % 251) as u8
}

struct Rig {
    mem: Memory,
    dev: Scsi,
    _files: Vec<tempfile::NamedTempFile>,
}

/// A disk at 0:0 (64 blocks of `pattern`), a CD-ROM at 1:0 with 4
/// blocks, an empty CD-ROM at 1:1; one request queue.
fn rig() -> Rig {
    rig_with(1)
}

/// [`rig`] with `queues` request queues.
fn rig_with(queues: u16) -> Rig {
    let image: Vec<u8> = (0..BLOCKS * 512).map(pattern).collect();
    let (f1, disk) = disk_on(&image, false);
    let (f2, iso) = disk_on(&vec![0xcd; 4 * 2048], true);
    let dev = Scsi::new(
        vec![
            LunSpec {
                target: 0,
                lun: 0,
                device: Device::Disk {
                    disk,
                    info: DiskInfo {
                        size: BLOCKS * 512,
                        read_only: false,
                        serial: None,
                        device_id: Some("drive-scsi0-0-0-0".into()),
                    },
                },
            },
            LunSpec {
                target: 1,
                lun: 0,
                device: Device::Cdrom { medium: Some(iso) },
            },
            LunSpec {
                target: 1,
                lun: 1,
                device: Device::Cdrom { medium: None },
            },
        ],
        queues,
    );
    let mut r = Rig {
        mem: memory(),
        dev,
        _files: vec![f1, f2],
    };
    // Each LUN's power-on unit attention, reported once.
    for (t, l) in [(0, 0), (1, 0), (1, 1)] {
        let resp = r.cmd(lun(t, l), &[0; 6], &[], 0);
        assert_eq!((resp.status, resp.sense[2], resp.sense[12]), (2, 6, 0x29));
    }
    r
}

fn lun(target: u8, lun: u16) -> [u8; 8] {
    let l = if lun >= 256 { 0x4000 | lun } else { lun };
    let b = l.to_be_bytes();
    [1, target, b[0], b[1], 0, 0, 0, 0]
}

/// The parts of a response.
#[derive(Debug)]
struct Resp {
    sense_len: u32,
    resid: u32,
    status: u8,
    response: u8,
    sense: [u8; 18],
    used_len: u32,
}

impl Rig {
    /// Sends one command with `out` bytes of data-out (at OUT) or `din`
    /// bytes of data-in room (at BUF); the response.
    fn cmd(&mut self, addr: [u8; 8], cdb: &[u8], out: &[u8], din: u32) -> Resp {
        let mut req = vec![0u8; REQ_LEN as usize];
        req[..8].copy_from_slice(&addr);
        req[19..19 + cdb.len()].copy_from_slice(cdb);
        self.mem.write_slice(&req, GuestAddress(REQ)).unwrap();
        self.mem.write_slice(out, GuestAddress(OUT)).unwrap();
        let mut chain = vec![(REQ, REQ_LEN, 0)];
        if !out.is_empty() {
            chain.push((OUT, out.len() as u32, 0));
        }
        chain.push((RESP, RESP_LEN, WRITE));
        if din > 0 {
            chain.push((BUF, din, WRITE));
        }
        self.raw(&chain)
    }

    /// Sends one chain on the request queue; the response at RESP.
    fn raw(&mut self, chain: &[(u64, u32, u16)]) -> Resp {
        self.mem
            .write_slice(&[0xee; RESP_LEN as usize], GuestAddress(RESP))
            .unwrap();
        let mem = self.mem.clone();
        let n = self.dev.queue_max_sizes().len() as u64;
        let qs: Vec<_> = (0..n)
            .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16))
            .collect();
        activate(&mut self.dev, &mem, &qs.iter().collect::<Vec<_>>(), 0);
        add_chain(&qs[2], 0, chain);
        self.dev.process_queue(2);
        assert_eq!(used_idx(&qs[2]), 1, "the chain comes back");
        let (_, used_len) = used(&qs[2], 0);
        let mut r = [0u8; 12 + 18];
        mem.read_slice(&mut r, GuestAddress(RESP)).unwrap();
        Resp {
            sense_len: u32::from_le_bytes(r[0..4].try_into().unwrap()),
            resid: u32::from_le_bytes(r[4..8].try_into().unwrap()),
            status: r[10],
            response: r[11],
            sense: r[12..30].try_into().unwrap(),
            used_len,
        }
    }

    fn buf(&self, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(BUF)).unwrap();
        b
    }
}

fn read10(lba: u32, n: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&n.to_be_bytes());
    c.push(0);
    c
}

#[test]
fn a_disk_reads_writes_and_flushes_through_the_request_queue() {
    let mut r = rig();
    let resp = r.cmd(lun(0, 0), &read10(3, 2), &[], 1024);
    assert_eq!((resp.response, resp.status, resp.resid), (0, 0, 0));
    assert_eq!(resp.used_len, RESP_LEN + 1024);
    let want: Vec<u8> = (3 * 512..5 * 512).map(pattern).collect();
    assert_eq!(r.buf(1024), want);
    // A larger buffer leaves a residual.
    let resp = r.cmd(lun(0, 0), &read10(0, 1), &[], 4096);
    assert_eq!(resp.resid, 4096 - 512);
    // WRITE(10) lands in the image.
    let mut w = read10(7, 1);
    w[0] = 0x2a;
    let resp = r.cmd(lun(0, 0), &w, &[0x5a; 512], 0);
    assert_eq!((resp.response, resp.status), (0, 0));
    let resp = r.cmd(lun(0, 0), &read10(7, 1), &[], 512);
    assert_eq!(resp.status, 0);
    assert_eq!(r.buf(512), vec![0x5a; 512]);
    let resp = r.cmd(lun(0, 0), &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!((resp.response, resp.status), (0, 0));
}

#[test]
fn cdbs_past_the_capacity_are_check_conditions_with_sense() {
    let mut r = rig();
    let resp = r.cmd(lun(0, 0), &read10(63, 2), &[], 1024);
    assert_eq!((resp.response, resp.status), (0, 2));
    assert_eq!(resp.sense_len, 18);
    assert_eq!((resp.sense[2], resp.sense[12]), (5, 0x21));
    let mut c16 = [0u8; 16];
    c16[0] = 0x88;
    c16[2..10].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    c16[13] = 4;
    let resp = r.cmd(lun(0, 0), &c16, &[], 2048);
    assert_eq!((resp.status, resp.sense[12]), (2, 0x21));
    // A read longer than the buffers given is an overrun.
    let resp = r.cmd(lun(0, 0), &read10(0, 4), &[], 512);
    assert_eq!(resp.response, response::OVERRUN);
    // Buffers both ways fail.
    let resp = r.cmd(lun(0, 0), &read10(0, 1), &[1; 512], 0);
    assert_eq!(resp.response, response::OVERRUN);
    let resp = r.cmd(lun(0, 0), &[0xff], &[], 0);
    assert_eq!((resp.status, resp.sense[2], resp.sense[12]), (2, 5, 0x20));
}

#[test]
fn empty_targets_are_bad_targets_and_empty_luns_answer_as_the_bus() {
    let mut r = rig();
    let inquiry = [0x12, 0, 0, 0, 36, 0];
    let resp = r.cmd(lun(5, 0), &inquiry, &[], 36);
    assert_eq!(resp.response, response::BAD_TARGET);
    assert_eq!(resp.used_len, RESP_LEN);
    // Not a single-level LUN address at all.
    let mut bad = lun(0, 0);
    bad[0] = 2;
    assert_eq!(r.cmd(bad, &inquiry, &[], 36).response, response::BAD_TARGET);
    // Target 0 exists, LUN 3 does not: peripheral qualifier 3.
    let resp = r.cmd(lun(0, 3), &inquiry, &[], 36);
    assert_eq!((resp.response, resp.status), (0, 0));
    assert_eq!(r.buf(1)[0], 0x7f);
    let resp = r.cmd(lun(0, 3), &read10(0, 1), &[], 512);
    assert_eq!((resp.status, resp.sense[12]), (2, 0x25));
    // REPORT LUNS on target 1 lists 0 and 1.
    let resp = r.cmd(
        lun(1, 7),
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
        256,
    );
    assert_eq!(resp.resid, 256 - 24);
    assert_eq!(&r.buf(24)[..4], &16u32.to_be_bytes());
}

#[test]
fn the_cdrom_reads_2048_byte_blocks_and_the_empty_one_is_not_ready() {
    let mut r = rig();
    let resp = r.cmd(lun(1, 0), &[0x12, 0, 0, 0, 36, 0], &[], 36);
    assert_eq!(resp.status, 0);
    let b = r.buf(36);
    assert_eq!((b[0], b[1]), (5, 0x80));
    assert_eq!(&b[16..32], b"QEMU CD-ROM     ");
    let resp = r.cmd(lun(1, 0), &read10(3, 1), &[], 2048);
    assert_eq!(resp.status, 0);
    assert_eq!(r.buf(2048), vec![0xcd; 2048]);
    let resp = r.cmd(lun(1, 0), &read10(4, 1), &[], 2048);
    assert_eq!((resp.status, resp.sense[12]), (2, 0x21));
    let mut w = read10(0, 1);
    w[0] = 0x2a;
    let resp = r.cmd(lun(1, 0), &w, &[0; 2048], 0);
    assert_eq!(resp.status, 2, "a CD-ROM does not write");
    let resp = r.cmd(lun(1, 1), &[0, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!((resp.status, resp.sense[2], resp.sense[12]), (2, 2, 0x3a));
}

#[test]
fn hostile_chains_come_back_without_a_response() {
    let mut r = rig();
    // Header outside RAM.
    let resp = r.raw(&[(MEM_SIZE - 8, REQ_LEN, 0), (RESP, RESP_LEN, WRITE)]);
    assert_eq!(resp.used_len, 0);
    // Response too short for the header.
    let resp = r.raw(&[(REQ, REQ_LEN, 0), (RESP, 8, WRITE)]);
    assert_eq!(resp.used_len, 0);
    // Short header.
    let resp = r.raw(&[(REQ, 10, 0), (RESP, RESP_LEN, WRITE)]);
    assert_eq!(resp.used_len, 0);
    // Readable after writable.
    let resp = r.raw(&[(RESP, RESP_LEN, WRITE), (REQ, REQ_LEN, 0)]);
    assert_eq!(resp.used_len, 0);
    // A header split over three descriptors still parses.
    let mut req = vec![0u8; REQ_LEN as usize];
    req[..8].copy_from_slice(&lun(0, 0));
    req[19..29].copy_from_slice(&read10(1, 1));
    r.mem.write_slice(&req, GuestAddress(REQ)).unwrap();
    let resp = r.raw(&[
        (REQ, 5, 0),
        (REQ + 5, 20, 0),
        (REQ + 25, REQ_LEN - 25, 0),
        (RESP, 10, WRITE),
        (RESP + 10, RESP_LEN - 10 + 100, WRITE),
        (BUF + 100, 412, WRITE),
    ]);
    assert_eq!((resp.response, resp.status), (0, 0));
    // Zero-length descriptors anywhere (the fuzz target found the first
    // one ending the header early).
    let resp2 = r.raw(&[
        (REQ, 0, 0),
        (REQ, REQ_LEN, 0),
        (RESP, 0, WRITE),
        (RESP, RESP_LEN, WRITE),
        (BUF, 512, WRITE),
    ]);
    assert_eq!((resp2.response, resp2.status), (0, 0));
    let want: Vec<u8> = (512..1024).map(pattern).collect();
    assert_eq!(r.buf(512), want);
    let resp = r.raw(&[
        (REQ, 5, 0),
        (REQ + 5, 20, 0),
        (REQ + 25, REQ_LEN - 25, 0),
        (RESP, 10, WRITE),
        (RESP + 10, RESP_LEN - 10 + 100, WRITE),
        (BUF + 100, 412, WRITE),
    ]);
    assert_eq!((resp.response, resp.status), (0, 0));
    let mut got = vec![0u8; 512];
    r.mem
        .read_slice(&mut got[..100], GuestAddress(RESP + RESP_LEN as u64))
        .unwrap();
    r.mem
        .read_slice(&mut got[100..], GuestAddress(BUF + 100))
        .unwrap();
    assert_eq!(got, want);
    // A data buffer outside RAM: the chain is refused whole.
    let resp = r.raw(&[
        (REQ, REQ_LEN, 0),
        (RESP, RESP_LEN, WRITE),
        (MEM_SIZE - 256, 512, WRITE),
    ]);
    assert_eq!(resp.used_len, 0);
}

#[test]
fn the_control_queue_answers_tmfs_and_notifications() {
    let r = rig();
    let mut dev = r.dev;
    let mem = r.mem;
    let qs = [0, 1, 2].map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16));
    let irq = activate(&mut dev, &mem, &[&qs[0], &qs[1], &qs[2]], 0);
    let tmf = |target: u8, subtype: u32| {
        let mut b = vec![0u8; 24];
        b[4..8].copy_from_slice(&subtype.to_le_bytes());
        b[8..16].copy_from_slice(&lun(target, 0));
        b
    };
    // LOGICAL UNIT RESET on 0:0, ABORT TASK on an empty target, an
    // unknown function, an AN query, an unknown request type.
    let reqs: Vec<Vec<u8>> = vec![
        tmf(0, 5),
        tmf(9, 0),
        tmf(0, 99),
        {
            let mut b = vec![0u8; 16];
            b[0] = 1;
            b
        },
        vec![7, 0, 0, 0, 0, 0, 0, 0],
    ];
    for (i, req) in reqs.iter().enumerate() {
        let at = REQ + i as u64 * 0x100;
        mem.write_slice(req, GuestAddress(at)).unwrap();
        let resp = RESP + i as u64 * 0x100;
        mem.write_slice(&[0xee; 8], GuestAddress(resp)).unwrap();
        add_chain(
            &qs[0],
            (i * 2) as u16,
            &[(at, req.len() as u32, 0), (resp, 8, WRITE)],
        );
    }
    dev.process_queue(0);
    assert_eq!(used_idx(&qs[0]), 5);
    let byte = |i: u64, off: u64| {
        let mut b = [0u8];
        mem.read_slice(&mut b, GuestAddress(RESP + i * 0x100 + off))
            .unwrap();
        b[0]
    };
    assert_eq!(byte(0, 0), 0, "function complete");
    assert_eq!(byte(1, 0), response::BAD_TARGET);
    assert_eq!(byte(2, 0), response::FUNCTION_REJECTED);
    assert_eq!((byte(3, 0), byte(3, 4)), (0, 0), "no events, OK");
    assert_eq!(used(&qs[0], 4).1, 0, "unknown type: no response");
    assert_eq!(byte(4, 0), 0xee);
    assert!(!irq.used.lock().unwrap().is_empty());
    // Event buffers are kept.
    add_chain(&qs[1], 0, &[(BUF, 16, WRITE)]);
    dev.process_queue(1);
    assert_eq!(used_idx(&qs[1]), 0);
}

#[test]
fn the_config_space_is_qemus_and_takes_sense_and_cdb_sizes() {
    let mut dev = rig().dev;
    let mut c = [0u8; CONFIG_SIZE];
    dev.read_config(0, &mut c);
    let word = |c: &[u8], i: usize| u32::from_le_bytes(c[i..i + 4].try_into().unwrap());
    assert_eq!(
        (0..7).map(|i| word(&c, i * 4)).collect::<Vec<_>>(),
        [1, 254, 0xffff, 128, 16, 96, 32]
    );
    assert_eq!(&c[28..36], &[0, 0, 255, 0, 0xff, 0x3f, 0, 0]);
    dev.write_config(20, &64u32.to_le_bytes());
    dev.write_config(24, &300u32.to_le_bytes());
    dev.read_config(0, &mut c);
    assert_eq!((word(&c, 20), word(&c, 24)), (64, 32));
    dev.reset();
    dev.read_config(0, &mut c);
    assert_eq!(word(&c, 20), 96);
    let mut past = [0xffu8; 8];
    dev.read_config(1000, &mut past);
    assert_eq!(past, [0; 8]);
}

#[test]
fn the_request_queue_alone_is_enough_as_for_seabios() {
    let mut r = rig();
    let mem = r.mem.clone();
    let qs = [0, 1, 2].map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16));
    let mut queues: Vec<virtio_queue::Queue> =
        qs.iter().map(|m| m.create_queue().unwrap()).collect();
    queues[0].set_ready(false);
    queues[1].set_ready(false);
    let irq = Arc::new(RecordingInterrupt::default());
    let ctx = |queues| ActivateContext {
        mem: mem.clone(),
        queues,
        interrupt: irq.clone(),
        acked_features: crate::features::VERSION_1,
    };
    r.dev.activate(ctx(queues)).unwrap();
    // A kick on a control queue that is not there changes nothing.
    r.dev.process_queue(0);
    assert!(!irq.needs_reset.load(std::sync::atomic::Ordering::SeqCst));
    let mut queues: Vec<virtio_queue::Queue> =
        qs.iter().map(|m| m.create_queue().unwrap()).collect();
    queues[2].set_ready(false);
    assert!(r.dev.activate(ctx(queues)).is_err(), "no request queue");
}

#[test]
fn every_request_queue_serves_the_same_luns_and_interrupts_its_own_vector() {
    let mut r = rig_with(4);
    assert_eq!(r.dev.queue_max_sizes(), &[QUEUE_SIZE; 6]);
    let mut c = [0u8; 4];
    r.dev.read_config(0, &mut c);
    assert_eq!(u32::from_le_bytes(c), 4, "num_queues");
    let mem = r.mem.clone();
    let qs: Vec<_> = (0..6)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16))
        .collect();
    let mocks: Vec<_> = qs.iter().collect();
    let irq = activate(&mut r.dev, &mem, &mocks, 0);
    // READ(10) of block 2 + q on request queue q, each into its own buffer.
    for q in 2..6u64 {
        let (req, resp, buf) = (REQ + q * 0x100, RESP + q * 0x100, BUF + q * 0x1000);
        let mut h = vec![0u8; REQ_LEN as usize];
        h[..8].copy_from_slice(&lun(0, 0));
        let cdb = read10(q as u32, 1);
        h[19..19 + cdb.len()].copy_from_slice(&cdb);
        mem.write_slice(&h, GuestAddress(req)).unwrap();
        add_chain(
            &qs[q as usize],
            0,
            &[
                (req, REQ_LEN, 0),
                (resp, RESP_LEN, WRITE),
                (buf, 512, WRITE),
            ],
        );
    }
    // Kicks in any order; each queue's chain comes back on that queue.
    for q in [5, 3, 2, 4] {
        r.dev.process_queue(q);
        assert_eq!(used_idx(&qs[usize::from(q)]), 1, "queue {q}");
    }
    for q in 2..6u64 {
        let mut b = vec![0u8; 512];
        mem.read_slice(&mut b, GuestAddress(BUF + q * 0x1000))
            .unwrap();
        let want: Vec<u8> = (q * 512..(q + 1) * 512).map(pattern).collect();
        assert_eq!(b, want, "queue {q}'s data");
        assert_eq!(used(&qs[q as usize], 0).1, RESP_LEN + 512);
    }
    assert_eq!(*irq.used.lock().unwrap(), vec![5, 3, 2, 4]);
    // A kick past the last queue is ignored.
    r.dev.process_queue(6);
    assert!(!irq.needs_reset.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn any_one_request_queue_is_enough_and_the_count_is_bounded() {
    let mut r = rig_with(2);
    let mem = r.mem.clone();
    let qs: Vec<_> = (0..4)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16))
        .collect();
    let irq = Arc::new(RecordingInterrupt::default());
    let ctx = |queues| ActivateContext {
        mem: mem.clone(),
        queues,
        interrupt: irq.clone(),
        acked_features: crate::features::VERSION_1,
    };
    let queues = |ready: &[bool]| -> Vec<virtio_queue::Queue> {
        qs.iter()
            .zip(ready)
            .map(|(m, &on)| {
                let mut q: virtio_queue::Queue = m.create_queue().unwrap();
                q.set_ready(on);
                q
            })
            .collect()
    };
    r.dev
        .activate(ctx(queues(&[false, false, false, true])))
        .unwrap();
    r.dev.reset();
    assert!(r
        .dev
        .activate(ctx(queues(&[true, true, false, false])))
        .is_err());
    // Three queues for a device with four.
    let three: Vec<_> = queues(&[true; 4]).into_iter().take(3).collect();
    assert!(r.dev.activate(ctx(three)).is_err());
    assert_eq!(Scsi::new(Vec::new(), 0).request_queues(), 1);
    assert_eq!(
        Scsi::new(Vec::new(), u16::MAX).request_queues(),
        MAX_REQUEST_QUEUES
    );
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn descriptor() -> impl Strategy<Value = (u64, u32, u16)> {
        (
            prop_oneof![
                Just(REQ),
                Just(RESP),
                Just(BUF),
                Just(OUT),
                Just(MEM_SIZE - 64),
                any::<u64>(),
            ],
            prop_oneof![Just(REQ_LEN), Just(RESP_LEN), 0u32..4096, any::<u32>()],
            prop_oneof![Just(0u16), Just(WRITE)],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any chain over any header, LUN address and CDB comes back, once,
        /// never longer than its writable buffers, and never writes the
        /// CD-ROM's medium.
        #[test]
        fn random_requests_come_back_bounded(
            chain in proptest::collection::vec(descriptor(), 1..6),
            header in proptest::collection::vec(any::<u8>(), 51),
            target in 0u8..3,
        ) {
            let mut r = rig();
            let mut header = header;
            if header[0] & 1 == 0 {
                // Mostly well-formed addresses, so commands reach LUNs.
                let l = lun(target, u16::from(header[3] & 1));
                header[..8].copy_from_slice(&l);
            }
            r.mem.write_slice(&header, GuestAddress(REQ)).unwrap();
            let resp = r.raw(&chain);
            let room: u64 = chain
                .iter()
                .filter(|d| d.2 == WRITE)
                .map(|d| u64::from(d.1))
                .sum();
            prop_assert!(u64::from(resp.used_len) <= room);
            let iso = std::fs::read(r._files[1].path()).unwrap();
            prop_assert!(iso.iter().all(|&b| b == 0xcd));
        }
    }
}

/// A medium the monitor puts in (tray opened, medium set, tray closed):
/// the guest's next command gets UNIT ATTENTION, MEDIUM MAY HAVE CHANGED
/// (once), then reads the new medium; the guest's own eject (START STOP
/// UNIT with LoEj) is a tray move the VMM reports.
#[test]
fn a_medium_change_is_a_unit_attention_and_a_guest_eject_a_tray_move() {
    let mut r = rig();
    let tur = [0u8; 6];
    let resp = r.cmd(lun(1, 1), &tur, &[], 0);
    assert_eq!((resp.status, resp.sense[12]), (2, 0x3a), "empty");
    let (f, iso) = disk_on(&vec![0xee; 2 * 2048], true);
    r._files.push(f);
    assert!(r.dev.cdrom(1, 1).unwrap().open_tray(false));
    r.dev.set_medium(1, 1, Some(iso));
    r.dev.cdrom(1, 1).unwrap().close_tray();
    assert!(r.dev.cdrom(0, 0).is_none(), "a disk has no tray");
    let resp = r.cmd(lun(1, 1), &tur, &[], 0);
    assert_eq!(
        (resp.status, resp.sense[2], resp.sense[12], resp.sense[13]),
        (2, 6, 0x28, 0)
    );
    let resp = r.cmd(lun(1, 1), &tur, &[], 0);
    assert_eq!(resp.status, 0, "the attention is reported once");
    let resp = r.cmd(lun(1, 1), &read10(1, 1), &[], 2048);
    assert_eq!(resp.status, 0);
    assert_eq!(r.buf(2048), vec![0xee; 2048]);
    // The moves so far were the monitor's.
    r.dev.take_tray_moves();
    // START STOP UNIT: LoEj, not Start: the tray opens.
    let resp = r.cmd(lun(1, 1), &[0x1b, 0, 0, 0, 2, 0], &[], 0);
    assert_eq!(resp.status, 0);
    assert_eq!(r.dev.take_tray_moves(), vec![(1, 1, Tray::Opened)]);
    assert!(r.dev.take_tray_moves().is_empty());
}

/// With a listener, the guest's tray moves go to it as they happen.
#[test]
fn the_guests_tray_moves_reach_the_listener() {
    let mut r = rig();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    r.dev.on_tray_moved(Arc::new(move |t, l, open| {
        h.lock().unwrap().push((t, l, open))
    }));
    // LoEj with and without Start: open, then load (close).
    assert_eq!(r.cmd(lun(1, 0), &[0x1b, 0, 0, 0, 2, 0], &[], 0).status, 0);
    assert_eq!(r.cmd(lun(1, 0), &[0x1b, 0, 0, 0, 3, 0], &[], 0).status, 0);
    assert_eq!(*heard.lock().unwrap(), vec![(1, 0, true), (1, 0, false)]);
    assert!(r.dev.take_tray_moves().is_empty());
}
