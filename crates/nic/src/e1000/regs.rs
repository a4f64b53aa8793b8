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

/// The 82574's registers beside the 82540EM's (Intel's 82574 datasheet,
/// 317694, chapter 10; Linux's `e1000e/regs.h`).
pub mod e82574 {
    pub const EIAC: u32 = 0x00dc;
    pub const IAM: u32 = 0x00e0;
    pub const IVAR: u32 = 0x00e4;
    /// EITR0-4, one per MSI-X vector.
    pub const EITR: u32 = 0x00e8;
    pub const EITR_END: u32 = 0x00fc;
    pub const EXTCNF_CTRL: u32 = 0x0f00;
    pub const EXTCNF_SIZE: u32 = 0x0f08;
    pub const EEMNGCTL: u32 = 0x1010;
    pub const PSRCTL: u32 = 0x2170;
    pub const RXDCTL: u32 = 0x2828;
    pub const RAID: u32 = 0x2c08;
    pub const TARC0: u32 = 0x3840;
    pub const TDBAL1: u32 = 0x3900;
    pub const TDT1: u32 = 0x3918;
    pub const TARC1: u32 = 0x3940;
    /// The statistics the 82574 adds after the 82540EM's (IAC and the
    /// interrupt counters), also cleared when read.
    pub const STATS_END: u32 = 0x4130;
    pub const RFCTL: u32 = 0x5008;
    pub const MRQC: u32 = 0x5818;
    pub const GCR: u32 = 0x5b00;
    pub const FACTPS: u32 = 0x5b30;
    pub const GCR2: u32 = 0x5b64;
    pub const PBACLR: u32 = 0x5b68;
    pub const POEMB: u32 = 0x5b6c;
    pub const RETA: u32 = 0x5c00;
    pub const RETA_END: u32 = 0x5c80;
    pub const RSSRK: u32 = 0x5c80;
    pub const RSSRK_END: u32 = 0x5ca8;

    pub mod ctrl {
        pub const GIO_MASTER_DISABLE: u32 = 1 << 2;
        pub const FRCSPD: u32 = 1 << 11;
        pub const FRCDPX: u32 = 1 << 12;
        pub const ADVD3WUC: u32 = 1 << 20;
        pub const SPD_SEL: u32 = 3 << 8;
    }

    pub mod status {
        /// PHY reset asserted: set by CTRL.PHY_RST, cleared by a write of 0.
        pub const PHYRA: u32 = 1 << 10;
    }

    pub mod ctrl_ext {
        pub const ASDCHK: u32 = 1 << 12;
        pub const EE_RST: u32 = 1 << 13;
        pub const SPD_BYPS: u32 = 1 << 15;
        /// Extended interrupt auto-mask enable: firing a vector clears its
        /// cause in IAM.
        pub const EIAME: u32 = 1 << 24;
        /// Interrupt acknowledge auto-mask: reading ICR clears IMS by IAM.
        pub const IAME: u32 = 1 << 27;
        /// Writing IMS clears the PBA bits of the vectors it enables.
        pub const PBA_CLR: u32 = 1 << 31;
    }

    /// The causes the 82574 adds (ICR, ICS, IMS, IMC).
    pub mod icr {
        pub const SRPD: u32 = 1 << 16;
        pub const ACK: u32 = 1 << 17;
        pub const MNG: u32 = 1 << 18;
        pub const RXQ0: u32 = 1 << 20;
        pub const RXQ1: u32 = 1 << 21;
        pub const TXQ0: u32 = 1 << 22;
        pub const TXQ1: u32 = 1 << 23;
        /// Any of [`OTHER_CAUSES`], under MSI-X.
        pub const OTHER: u32 = 1 << 24;
        /// Some cause is set.
        pub const ASSERTED: u32 = 1 << 31;
        /// What the "other" vector signals.
        pub const OTHER_CAUSES: u32 = super::super::icr::LSC
            | super::super::icr::RXO
            | super::super::icr::MDAC
            | SRPD
            | ACK
            | MNG;
        /// The causes that have an MSI-X vector of their own (IVAR).
        pub const QUEUES: u32 = RXQ0 | RXQ1 | TXQ0 | TXQ1 | OTHER;
        /// The causes IMS takes (QEMU's `ims_valid_mask`).
        pub const VALID: u32 =
            0x0000_00d7 | super::super::icr::MDAC | (1 << 15) | SRPD | ACK | MNG | QUEUES;
    }

    pub mod ivar {
        /// Each cause's 4-bit field: the vector, and Valid.
        pub const VALID: u32 = 1 << 3;
        pub const VECTOR: u32 = 0x7;
        pub const RXQ0_SHIFT: u32 = 0;
        pub const RXQ1_SHIFT: u32 = 4;
        pub const TXQ0_SHIFT: u32 = 8;
        pub const TXQ1_SHIFT: u32 = 12;
        pub const OTHER_SHIFT: u32 = 16;
        /// Write back every transmit descriptor, RS or not.
        pub const TX_INT_EVERY_WB: u32 = 1 << 31;
    }

    pub mod rfctl {
        /// Extended receive descriptors.
        pub const EXTEN: u32 = 1 << 15;
        pub const IPV6_DIS: u32 = 1 << 10;
    }

    pub mod rctl {
        /// Descriptor type: 01 is packet split.
        pub const DTYP_MASK: u32 = 3 << 10;
        /// A flexible buffer size in KiB (bits 27-30).
        pub const FLXBUF_MASK: u32 = 0xf << 27;
        pub const FLXBUF_SHIFT: u32 = 27;
    }

    pub mod eecd {
        pub const AUTO_RD: u32 = 1 << 9;
        pub const SIZE_EX_MASK: u32 = 3 << 11;
    }
}
