//! SMBIOS structures for firmware, as QEMU 7.2's pc and q35 serve them in
//! fw_cfg with no `-smbios` option: a 2.1 (32-bit) entry point for
//! `etc/smbios/smbios-anchor` and the structures for
//! `etc/smbios/smbios-tables` (types 1, 3, 4 per socket, 16, 17 per 16 GiB
//! DIMM, 19 per RAM range, 32, 127). SeaBIOS adds type 0, places the
//! structures and fills in the address and checksums. Hand-written: no
//! maintained crate builds SMBIOS (the `smbios-lib` crate reads them), and
//! the byte layout must match QEMU's exactly, which the differential test
//! in crates/vmm/tests/firmware.rs checks.

/// QEMU's largest DIMM a type 17 structure describes.
const MAX_DIMM: u64 = 16 << 30;

/// What the structures describe.
#[derive(Debug, Clone)]
pub struct SmbiosConfig {
    /// Type 1 product name (`Standard PC (i440FX + PIIX, 1996)`).
    pub product: String,
    /// Type 1/3/4 version: the machine type's full name (`pc-i440fx-7.2`).
    pub version: String,
    /// The `-uuid` as bytes in their printed order (all zero without one).
    pub uuid: [u8; 16],
    pub sockets: u32,
    /// Cores per socket (dies included).
    pub cores: u32,
    /// Threads per socket.
    pub threads: u32,
    /// CPUID leaf 1 EAX and EDX of the vCPUs, the type 4 processor ID.
    pub cpuid_1: (u32, u32),
    /// All guest RAM in bytes.
    pub ram_size: u64,
    /// RAM ranges (start, size), one type 19 structure each.
    pub ram_ranges: Vec<(u64, u64)>,
}

/// The two fw_cfg files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbiosTables {
    /// `etc/smbios/smbios-anchor`.
    pub anchor: Vec<u8>,
    /// `etc/smbios/smbios-tables`.
    pub tables: Vec<u8>,
}

/// One structure: its formatted part, then its strings (1-based indexes).
struct Structure {
    bytes: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, handle: u16) -> Self {
        let mut bytes = vec![kind, 0];
        bytes.extend_from_slice(&handle.to_le_bytes());
        Structure {
            bytes,
            strings: Vec::new(),
        }
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string field: its index, or 0 for an empty string.
    fn string(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self.u8(0);
        }
        self.strings.push(s.to_owned());
        let index = self.strings.len() as u8;
        self.u8(index)
    }
    fn finish(mut self) -> Vec<u8> {
        self.bytes[1] = self.bytes.len() as u8;
        for s in &self.strings {
            self.bytes.extend_from_slice(s.as_bytes());
            self.bytes.push(0);
        }
        // No strings: two zero bytes; else the last string's NUL and one.
        if self.strings.is_empty() {
            self.bytes.push(0);
        }
        self.bytes.push(0);
        self.bytes
    }
}

fn kib(bytes: u64) -> u32 {
    (bytes >> 10).min(u64::from(u32::MAX)) as u32
}

/// Builds QEMU 7.2's default structures and entry point for `cfg`.
pub fn build(cfg: &SmbiosConfig) -> SmbiosTables {
    const MANUFACTURER: &str = "QEMU";
    let mut all: Vec<Vec<u8>> = Vec::new();

    // Type 1: system. The UUID's first three fields are little-endian
    // (SMBIOS 2.6 and later), as QEMU writes them.
    let mut t = Structure::new(1, 0x100);
    t.string(MANUFACTURER)
        .string(&cfg.product)
        .string(&cfg.version)
        .string("");
    let u = cfg.uuid;
    let uuid = [
        u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13],
        u[14], u[15],
    ];
    t.bytes.extend_from_slice(&uuid);
    // Wake-up type: power switch; no SKU, no family.
    t.u8(6).string("").string("");
    all.push(t.finish());

    // Type 3: chassis, "other", every state "safe", no security.
    let mut t = Structure::new(3, 0x300);
    t.string(MANUFACTURER)
        .u8(1)
        .string(&cfg.version)
        .string("")
        .string("");
    t.u8(3)
        .u8(3)
        .u8(3)
        .u8(2)
        .u32(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .string("");
    all.push(t.finish());

    // Type 4: one per socket, at QEMU's default 2000 MHz. QEMU's processor
    // ID is its CPU model's leaf 1 words: without the HTT bit (EDX 28) it
    // adds to CPUID itself for more than one logical CPU.
    let (eax, edx) = (cfg.cpuid_1.0, cfg.cpuid_1.1 & !(1 << 28));
    for socket in 0..cfg.sockets {
        let mut t = Structure::new(4, 0x400 + socket as u16);
        t.string(&format!("CPU {socket}"))
            .u8(3) // central processor
            .u8(1) // family: other
            .string(MANUFACTURER)
            .u32(eax)
            .u32(edx)
            .string(&cfg.version)
            .u8(0) // voltage
            .u16(0) // external clock
            .u16(2000)
            .u16(2000)
            .u8(0x41) // populated, enabled
            .u8(1) // upgrade: other
            .u16(0xffff)
            .u16(0xffff)
            .u16(0xffff)
            .string("")
            .string("")
            .string("")
            .u8(cfg.cores.min(255) as u8)
            .u8(cfg.cores.min(255) as u8)
            .u8(cfg.threads.min(255) as u8)
            .u16(2) // characteristics: unknown
            .u16(1); // family 2: other
        all.push(t.finish());
    }

    // Type 16: the one memory array, capacity in KiB.
    let dimms = cfg.ram_size.div_ceil(MAX_DIMM).max(1);
    let mut t = Structure::new(16, 0x1000);
    t.u8(1) // location: other
        .u8(3) // use: system memory
        .u8(6) // error correction: multi-bit ECC
        .u32(kib(cfg.ram_size))
        .u16(0xfffe) // no error information
        .u16(dimms as u16)
        .u64(0);
    all.push(t.finish());

    // Type 17: one per DIMM of at most 16 GiB, size in MiB.
    let mut left = cfg.ram_size;
    for i in 0..dimms {
        let size = left.min(MAX_DIMM);
        left -= size;
        let mut t = Structure::new(17, 0x1100 + i as u16);
        t.u16(0x1000)
            .u16(0xfffe)
            .u16(0xffff)
            .u16(0xffff)
            .u16((size >> 20) as u16)
            .u8(9) // DIMM
            .u8(0)
            .string(&format!("DIMM {i}"))
            .string("")
            .u8(7) // RAM
            .u16(2) // type detail: other
            .u16(0)
            .string(MANUFACTURER)
            .string("")
            .string("")
            .string("")
            .u8(0)
            .u32(0)
            .u16(0)
            .u16(0)
            .u16(0)
            .u16(0);
        all.push(t.finish());
    }

    // Type 19: one per RAM range, addresses in KiB (the last one inclusive).
    for (i, &(start, size)) in cfg.ram_ranges.iter().enumerate() {
        let mut t = Structure::new(19, 0x1300 + i as u16);
        t.u32(kib(start))
            .u32(kib(start + size) - 1)
            .u16(0x1000)
            .u8(1)
            .u64(0)
            .u64(0);
        all.push(t.finish());
    }

    // Type 32: boot information, no errors.
    let mut t = Structure::new(32, 0x2000);
    t.bytes.extend_from_slice(&[0; 6]);
    t.u8(0);
    all.push(t.finish());

    all.push(Structure::new(127, 0x7f00).finish());

    let tables: Vec<u8> = all.concat();
    let max_size = all.iter().map(Vec::len).max().unwrap_or(0) as u16;
    // The 2.1 entry point; SeaBIOS fills in the address and checksums.
    let mut anchor = Vec::with_capacity(31);
    anchor.extend_from_slice(b"_SM_");
    anchor.extend_from_slice(&[0, 31, 2, 8]);
    anchor.extend_from_slice(&max_size.to_le_bytes());
    anchor.extend_from_slice(&[0; 6]);
    anchor.extend_from_slice(b"_DMI_");
    anchor.push(0);
    anchor.extend_from_slice(&(tables.len() as u16).to_le_bytes());
    anchor.extend_from_slice(&0u32.to_le_bytes());
    anchor.extend_from_slice(&(all.len() as u16).to_le_bytes());
    anchor.push(0x28);
    SmbiosTables { anchor, tables }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ram_size: u64, ranges: Vec<(u64, u64)>, sockets: u32) -> SmbiosConfig {
        SmbiosConfig {
            product: "Standard PC (Q35 + ICH9, 2009)".into(),
            version: "pc-q35-7.2".into(),
            uuid: [0; 16],
            sockets,
            cores: 1,
            threads: 1,
            cpuid_1: (0x806f2, 0x1f8b_fbff),
            ram_size,
            ram_ranges: ranges,
        }
    }

    /// (type, handle) of each structure, walking the formatted parts and
    /// their string sets as firmware does.
    fn walk(t: &[u8]) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < t.len() {
            out.push((t[i], u16::from_le_bytes([t[i + 2], t[i + 3]])));
            let mut j = i + usize::from(t[i + 1]);
            while t[j..j + 2] != [0, 0] {
                j += 1;
            }
            i = j + 2;
        }
        out
    }

    #[test]
    fn structures_follow_the_sockets_dimms_and_ranges() {
        let big = cfg(20 << 30, vec![(0, 2 << 30), (4 << 30, 18 << 30)], 3);
        let t = build(&big);
        assert_eq!(
            walk(&t.tables),
            [
                (1, 0x100),
                (3, 0x300),
                (4, 0x400),
                (4, 0x401),
                (4, 0x402),
                (16, 0x1000),
                (17, 0x1100),
                (17, 0x1101),
                (19, 0x1300),
                (19, 0x1301),
                (32, 0x2000),
                (127, 0x7f00),
            ]
        );
        let a = &t.anchor;
        assert_eq!(
            (&a[..4], a[5], &a[16..21]),
            (&b"_SM_"[..], 31, &b"_DMI_"[..])
        );
        assert_eq!(
            usize::from(u16::from_le_bytes([a[22], a[23]])),
            t.tables.len()
        );
        assert_eq!(u16::from_le_bytes([a[28], a[29]]), 12);
        // The second DIMM holds the 4 GiB past the first's 16 (in MiB).
        let second = t
            .tables
            .windows(3)
            .position(|w| w == [17, 40, 0x01])
            .unwrap();
        assert_eq!(&t.tables[second + 12..second + 14], &4096u16.to_le_bytes());
        // HTT is QEMU's run-time bit, not its model's: left out.
        let cpu = t
            .tables
            .windows(4)
            .position(|w| w == [4, 42, 0, 4])
            .unwrap();
        assert_eq!(&t.tables[cpu + 12..cpu + 16], &0x0f8b_fbffu32.to_le_bytes());
    }
}
