use proptest::prelude::*;

use super::*;

/// Guest memory for the tests: `mem[addr..]`, anything past it unreadable.
fn reader(mem: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
    move |addr, buf| {
        let Some(src) = usize::try_from(addr)
            .ok()
            .and_then(|a| mem.get(a..a.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
}

fn legacy(addr: u64, len: u16, cmd_bits: u32) -> [u8; DESC_LEN] {
    let mut d = [0u8; DESC_LEN];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&(u32::from(len) | cmd_bits).to_le_bytes());
    d
}

fn data(addr: u64, len: u16, cmd_bits: u32, popts: u8) -> [u8; DESC_LEN] {
    let mut d = legacy(addr, len, cmd_bits | cmd::DEXT | cmd::DTYP_D);
    d[13] = popts;
    d
}

fn context(c: &Context, tse: bool) -> [u8; DESC_LEN] {
    let mut d = [0u8; DESC_LEN];
    d[0] = c.ipcss;
    d[1] = c.ipcso;
    d[2..4].copy_from_slice(&c.ipcse.to_le_bytes());
    d[4] = c.tucss;
    d[5] = c.tucso;
    d[6..8].copy_from_slice(&c.tucse.to_le_bytes());
    let mut op = c.paylen | cmd::DEXT;
    if c.ip {
        op |= cmd::IP;
    }
    if c.tcp {
        op |= cmd::TCP;
    }
    if tse {
        op |= cmd::TSE;
    }
    d[8..12].copy_from_slice(&op.to_le_bytes());
    d[13] = c.hdr_len;
    d[14..16].copy_from_slice(&c.mss.to_le_bytes());
    d
}

fn run(path: &mut TxPath, mem: &[u8], descs: &[[u8; DESC_LEN]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut read = reader(mem);
    for d in descs {
        path.process(d, &mut read, &mut |f| out.push(f.to_vec()));
    }
    out
}

#[test]
fn a_legacy_frame_over_two_descriptors() {
    let mut mem = vec![0u8; 4096];
    mem[0x100..0x120].fill(0xaa);
    mem[0x200..0x210].fill(0xbb);
    let mut p = TxPath::default();
    let frames = run(
        &mut p,
        &mem,
        &[legacy(0x100, 0x20, 0), legacy(0x200, 0x10, cmd::EOP)],
    );
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), 0x30);
    assert!(frames[0][..0x20].iter().all(|&b| b == 0xaa));
    assert!(frames[0][0x20..].iter().all(|&b| b == 0xbb));
}

#[test]
fn a_buffer_outside_memory_drops_the_frame_and_the_next_one_goes() {
    let mem = vec![0u8; 4096];
    let mut p = TxPath::default();
    let frames = run(
        &mut p,
        &mem,
        &[
            legacy(u64::MAX - 4, 0x40, cmd::EOP),
            legacy(0x10, 0x40, cmd::EOP),
        ],
    );
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), 0x40);
}

/// An Ethernet + IPv4 + `l4` header, then `payload` bytes of a pattern.
fn packet(l4: &[u8], proto: u8, payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 20 + l4.len() + payload;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0,
        0,
        64,
        proto,
    ];
    ip.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f.extend((0..payload).map(|i| i as u8));
    f
}

fn ones_sum(b: &[u8]) -> u16 {
    finish(sum16(b))
}

/// A valid IPv4 header and L4 checksum (with the pseudo-header).
fn check(frame: &[u8], proto: u8) {
    assert_eq!(ones_sum(&frame[14..34]), 0, "IP header checksum");
    let l4 = &frame[34..];
    let mut pseudo = frame[26..34].to_vec();
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    assert_eq!(ones_sum(&pseudo), 0, "L4 checksum");
}

/// The pseudo-header sum without the length, as Linux seeds it for TSO
/// (and with it, for plain checksum offload).
fn seed(frame: &[u8], proto: u8, len: Option<u16>) -> u16 {
    let mut p = frame[26..34].to_vec();
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&len.unwrap_or(0).to_be_bytes());
    !finish(sum16(&p))
}

#[test]
fn checksum_offload_fills_in_ip_and_udp_checksums() {
    let mut f = packet(&[0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0], 17, 100);
    let udp_len = (8 + 100) as u16;
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    let s = seed(&f, 17, Some(udp_len));
    f[40..42].copy_from_slice(&s.to_be_bytes());
    let mut mem = vec![0u8; 4096];
    mem[0x400..0x400 + f.len()].copy_from_slice(&f);
    let ctx = Context {
        ipcss: 14,
        ipcso: 24,
        ipcse: 33,
        tucss: 34,
        tucso: 40,
        tucse: 0,
        ..Context::default()
    };
    let mut p = TxPath::default();
    let frames = run(
        &mut p,
        &mem,
        &[
            context(&ctx, false),
            data(0x400, f.len() as u16, cmd::EOP, popts::IXSM | popts::TXSM),
        ],
    );
    assert_eq!(frames.len(), 1);
    check(&frames[0], 17);
}

#[test]
fn tso_cuts_a_tcp_packet_into_mss_segments() {
    let payload = 2500;
    let mut tcp = [0u8; 20];
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x18 | 0x01; // PSH, ACK, FIN
    let mut f = packet(&tcp, 6, payload);
    let s = seed(&f, 6, None);
    f[50..52].copy_from_slice(&s.to_be_bytes());
    let mut mem = vec![0u8; 8192];
    mem[0x1000..0x1000 + f.len()].copy_from_slice(&f);
    let ctx = Context {
        ipcss: 14,
        ipcso: 24,
        // Linux's e1000_tso: the IP header only.
        ipcse: 33,
        tucss: 34,
        tucso: 50,
        tucse: 0,
        paylen: payload as u32,
        hdr_len: 54,
        mss: 1000,
        ip: true,
        tcp: true,
    };
    let mut p = TxPath::default();
    // The header in one descriptor, the payload in two, as Linux maps
    // an skb's head and fragments.
    let frames = run(
        &mut p,
        &mem,
        &[
            context(&ctx, true),
            data(0x1000, 54, cmd::TSE, popts::IXSM | popts::TXSM),
            data(0x1000 + 54, 1200, cmd::TSE, popts::IXSM | popts::TXSM),
            data(0x1000 + 1254, 1300, cmd::TSE | cmd::EOP, 0),
        ],
    );
    assert_eq!(
        frames.iter().map(Vec::len).collect::<Vec<_>>(),
        [1054, 1054, 554]
    );
    for (i, fr) in frames.iter().enumerate() {
        check(fr, 6);
        assert_eq!(
            u16::from_be_bytes([fr[16], fr[17]]) as usize,
            fr.len() - 14,
            "IP total length"
        );
        assert_eq!(u16::from_be_bytes([fr[18], fr[19]]), 0x1234 + i as u16);
        let seq = u32::from_be_bytes(fr[38..42].try_into().unwrap());
        assert_eq!(seq, 1000 + 1000 * i as u32);
        let last = i == frames.len() - 1;
        assert_eq!(fr[47] & 9 != 0, last, "PSH/FIN only on the last");
        assert_eq!(
            &fr[54..],
            &f[54 + 1000 * i..(54 + 1000 * i + fr.len() - 54)]
        );
    }
}

#[test]
fn checksum_offsets_past_the_frame_insert_nothing() {
    let mem = vec![0x11u8; 4096];
    let ctx = Context {
        ipcss: 200,
        ipcso: 250,
        tucss: 255,
        tucso: 255,
        tucse: 0xffff,
        ..Context::default()
    };
    let mut p = TxPath::default();
    let frames = run(
        &mut p,
        &mem,
        &[
            context(&ctx, false),
            data(0, 40, cmd::EOP, popts::IXSM | popts::TXSM),
        ],
    );
    assert_eq!(frames, [vec![0x11u8; 40]]);
}

fn any_desc() -> impl Strategy<Value = [u8; DESC_LEN]> {
    (
        prop_oneof![Just(0u64), 0u64..8192, any::<u64>()],
        any::<u16>(),
        any::<u8>(),
        prop_oneof![Just(0u8), Just(0x20), Just(0x30), any::<u8>()],
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(addr, len, cso, cmd_hi, setup, upper)| {
            let mut d = [0u8; DESC_LEN];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            // A context descriptor's setup fields live where a data
            // descriptor's address does: vary them too.
            if cmd_hi & 0x30 == 0x20 {
                d[..4].copy_from_slice(&setup);
            }
            d[8..10].copy_from_slice(&len.to_le_bytes());
            d[10] = cso;
            d[11] = cmd_hi;
            d[12..16].copy_from_slice(&upper);
            d
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of descriptors over any memory: no panic, no frame
    /// past the 64 KiB buffer, and no more frames than the bytes read
    /// could make (each segment carries at least one new byte).
    #[test]
    fn any_descriptors_are_survived(
        descs in proptest::collection::vec(any_desc(), 1..24),
        fill in any::<u8>(),
    ) {
        let mem = vec![fill; 8192];
        let mut p = TxPath::default();
        let mut read_bytes = 0usize;
        let mut frames = 0usize;
        let mut read = reader(&mem);
        for d in &descs {
            p.process(
                d,
                &mut |a, b| { read_bytes += b.len(); read(a, b) },
                &mut |f| {
                    assert!(f.len() <= MAX_PACKET);
                    frames += 1;
                },
            );
        }
        prop_assert!(frames <= read_bytes + descs.len());
    }
}
