//! AHCI 1.x register offsets and bits (the HBA's generic registers in ABAR
//! from 0, each port's 0x80 bytes from 0x100).

/// HBA capabilities.
pub const CAP: u64 = 0x00;
/// Global HBA control.
pub const GHC: u64 = 0x04;
/// Interrupt status, one bit per port.
pub const IS: u64 = 0x08;
/// Ports implemented.
pub const PI: u64 = 0x0c;
/// Version.
pub const VS: u64 = 0x10;
pub const CAP2: u64 = 0x24;

/// Where the first port's registers are, and each port's stride.
pub const PORT_BASE: u64 = 0x100;
pub const PORT_LEN: u64 = 0x80;

pub mod ghc {
    pub const HR: u32 = 1 << 0;
    pub const IE: u32 = 1 << 1;
    pub const AE: u32 = 1 << 31;
}

pub mod cap {
    /// 64-bit addressing.
    pub const S64A: u32 = 1 << 31;
    /// AHCI only (no legacy IDE mode).
    pub const SAM: u32 = 1 << 18;
    /// Interface speed: Gen 1 (1.5 Gbps).
    pub const ISS_GEN1: u32 = 1 << 20;
    /// Staggered spin-up.
    pub const SSS: u32 = 1 << 27;
}

/// Port register offsets.
pub mod port {
    pub const CLB: u64 = 0x00;
    pub const CLBU: u64 = 0x04;
    pub const FB: u64 = 0x08;
    pub const FBU: u64 = 0x0c;
    pub const IS: u64 = 0x10;
    pub const IE: u64 = 0x14;
    pub const CMD: u64 = 0x18;
    pub const TFD: u64 = 0x20;
    pub const SIG: u64 = 0x24;
    pub const SSTS: u64 = 0x28;
    pub const SCTL: u64 = 0x2c;
    pub const SERR: u64 = 0x30;
    pub const SACT: u64 = 0x34;
    pub const CI: u64 = 0x38;
    pub const SNTF: u64 = 0x3c;
}

/// PxCMD bits.
pub mod cmd {
    pub const ST: u32 = 1 << 0;
    pub const SUD: u32 = 1 << 1;
    pub const POD: u32 = 1 << 2;
    pub const CLO: u32 = 1 << 3;
    pub const FRE: u32 = 1 << 4;
    pub const FR: u32 = 1 << 14;
    pub const CR: u32 = 1 << 15;
    /// What software may write (ICC, ASP, ALPE, DLAE, ATAPI, FRE, POD,
    /// SUD, ST).
    pub const WRITABLE: u32 =
        0xf000_0000 | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | FRE | POD | SUD | ST;
}

/// PxIS bits.
pub mod is {
    /// Device to host register FIS received.
    pub const DHRS: u32 = 1 << 0;
    /// PIO Setup FIS received.
    pub const PSS: u32 = 1 << 1;
    /// Host bus fatal error (a command list or table outside RAM).
    pub const HBFS: u32 = 1 << 29;
    /// Task file error.
    pub const TFES: u32 = 1 << 30;
    /// Interface fatal error (a malformed command FIS).
    pub const IFS: u32 = 1 << 27;
    /// What PxIE may enable.
    pub const VALID: u32 = 0xfdc0_00ff;
}

/// FIS types.
pub mod fis {
    pub const REG_H2D: u8 = 0x27;
    pub const REG_D2H: u8 = 0x34;
    pub const PIO_SETUP: u8 = 0x5f;
    /// Where each FIS lands in the receive area.
    pub const PSFIS_OFFSET: u64 = 0x20;
    pub const RFIS_OFFSET: u64 = 0x40;
    /// Command table: the command FIS, the ATAPI command, the PRDT.
    pub const ACMD_OFFSET: u64 = 0x40;
    pub const PRDT_OFFSET: u64 = 0x80;
}
