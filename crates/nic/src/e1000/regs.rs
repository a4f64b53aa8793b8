//! The 82540EM's register offsets (byte offsets in BAR 0) and bits, as
//! Intel's manual (PCI/PCI-X Family of Gigabit Ethernet Controllers
//! Software Developer's Manual, 317453) and Linux's `e1000_hw.h` name them.

pub const CTRL: u32 = 0x0000;
pub const STATUS: u32 = 0x0008;
pub const EECD: u32 = 0x0010;
pub const EERD: u32 = 0x0014;
pub const CTRL_EXT: u32 = 0x0018;
pub const MDIC: u32 = 0x0020;
pub const FCAL: u32 = 0x0028;
pub const FCAH: u32 = 0x002c;
pub const FCT: u32 = 0x0030;
pub const VET: u32 = 0x0038;
pub const ICR: u32 = 0x00c0;
pub const ITR: u32 = 0x00c4;
pub const ICS: u32 = 0x00c8;
pub const IMS: u32 = 0x00d0;
pub const IMC: u32 = 0x00d8;
pub const RCTL: u32 = 0x0100;
pub const FCTTV: u32 = 0x0170;
pub const TXCW: u32 = 0x0178;
pub const RXCW: u32 = 0x0180;
pub const TCTL: u32 = 0x0400;
pub const TIPG: u32 = 0x0410;
pub const LEDCTL: u32 = 0x0e00;
pub const PBA: u32 = 0x1000;
pub const FCRTL: u32 = 0x2160;
pub const FCRTH: u32 = 0x2168;
pub const RDBAL: u32 = 0x2800;
pub const RDBAH: u32 = 0x2804;
pub const RDLEN: u32 = 0x2808;
pub const RDH: u32 = 0x2810;
pub const RDT: u32 = 0x2818;
pub const RDTR: u32 = 0x2820;
pub const RADV: u32 = 0x282c;
pub const RSRPD: u32 = 0x2c00;
pub const TDBAL: u32 = 0x3800;
pub const TDBAH: u32 = 0x3804;
pub const TDLEN: u32 = 0x3808;
pub const TDH: u32 = 0x3810;
pub const TDT: u32 = 0x3818;
pub const TIDV: u32 = 0x3820;
pub const TXDCTL: u32 = 0x3828;
pub const TADV: u32 = 0x382c;
/// The statistics registers, each cleared when read.
pub const STATS_START: u32 = 0x4000;
pub const STATS_END: u32 = 0x4100;
pub const MPC: u32 = 0x4010;
pub const GPRC: u32 = 0x4074;
pub const BPRC: u32 = 0x4078;
pub const MPRC: u32 = 0x407c;
pub const GPTC: u32 = 0x4080;
pub const GORCL: u32 = 0x4088;
pub const GORCH: u32 = 0x408c;
pub const GOTCL: u32 = 0x4090;
pub const GOTCH: u32 = 0x4094;
pub const RNBC: u32 = 0x40a0;
pub const TORL: u32 = 0x40c0;
pub const TORH: u32 = 0x40c4;
pub const TOTL: u32 = 0x40c8;
pub const TOTH: u32 = 0x40cc;
pub const TPR: u32 = 0x40d0;
pub const TPT: u32 = 0x40d4;
pub const BPTC: u32 = 0x40f4;
pub const MPTC: u32 = 0x40f0;
pub const RXCSUM: u32 = 0x5000;
/// The multicast table: 128 words.
pub const MTA: u32 = 0x5200;
pub const MTA_END: u32 = 0x5400;
/// The receive addresses: 16 pairs of RAL, RAH.
pub const RA: u32 = 0x5400;
pub const RA_END: u32 = 0x5480;
/// The VLAN filter table: 128 words.
pub const VFTA: u32 = 0x5600;
pub const VFTA_END: u32 = 0x5800;
pub const WUC: u32 = 0x5800;
pub const WUFC: u32 = 0x5808;
pub const WUS: u32 = 0x5810;
pub const MANC: u32 = 0x5820;
pub const SWSM: u32 = 0x5b50;

pub mod ctrl {
    pub const FD: u32 = 1 << 0;
    pub const SLU: u32 = 1 << 6;
    pub const SPD_1000: u32 = 1 << 9;
    pub const SWDPIN0: u32 = 1 << 18;
    pub const SWDPIN2: u32 = 1 << 20;
    /// Self-clearing.
    pub const RST: u32 = 1 << 26;
    pub const PHY_RST: u32 = 1 << 31;
}

pub mod status {
    pub const FD: u32 = 1 << 0;
    pub const LU: u32 = 1 << 1;
    pub const SPEED_1000: u32 = 1 << 7;
    pub const ASDV_1000: u32 = 3 << 8;
    pub const MTXCKOK: u32 = 1 << 10;
    pub const GIO_MASTER_ENABLE: u32 = 1 << 19;
}

/// Interrupt causes (ICR, ICS, IMS, IMC).
pub mod icr {
    pub const TXDW: u32 = 1 << 0;
    pub const TXQE: u32 = 1 << 1;
    pub const LSC: u32 = 1 << 2;
    pub const RXDMT0: u32 = 1 << 4;
    pub const RXO: u32 = 1 << 6;
    pub const RXT0: u32 = 1 << 7;
    pub const MDAC: u32 = 1 << 9;
}

pub mod rctl {
    pub const EN: u32 = 1 << 1;
    pub const UPE: u32 = 1 << 3;
    pub const MPE: u32 = 1 << 4;
    pub const LPE: u32 = 1 << 5;
    pub const MO_SHIFT: u32 = 12;
    pub const BAM: u32 = 1 << 15;
    pub const BSIZE_MASK: u32 = 3 << 16;
    pub const BSEX: u32 = 1 << 25;
    pub const SECRC: u32 = 1 << 26;
    /// RDMTS, the free-descriptor threshold of RXDMT0 (1/2, 1/4, 1/8).
    pub const RDMTS_SHIFT: u32 = 8;
}

pub mod tctl {
    pub const EN: u32 = 1 << 1;
}

/// The receive-address high word's Address Valid bit.
pub const RAH_AV: u32 = 1 << 31;
