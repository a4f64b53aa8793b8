//! The PHY behind MDIC: a Marvell 88E1011 as QEMU's e1000 presents it
//! (its registers' reset values and which the driver may read or write).
//! Autonegotiation completes at once when restarted, where QEMU takes
//! 500 ms: the link partner is the host's virtual wire either way.

/// MDIC bits.
pub mod mdic {
    pub const DATA_MASK: u32 = 0xffff;
    pub const REG_SHIFT: u32 = 16;
    pub const REG_MASK: u32 = 0x1f << REG_SHIFT;
    pub const PHY_SHIFT: u32 = 21;
    pub const PHY_MASK: u32 = 0x1f << PHY_SHIFT;
    pub const OP_WRITE: u32 = 1 << 26;
    pub const OP_READ: u32 = 1 << 27;
    pub const READY: u32 = 1 << 28;
    pub const INT_EN: u32 = 1 << 29;
    pub const ERROR: u32 = 1 << 30;
}

pub const BMCR: usize = 0x00;
pub const BMSR: usize = 0x01;
pub const PHYID1: usize = 0x02;
pub const PHYID2: usize = 0x03;
pub const ANAR: usize = 0x04;
pub const ANLPAR: usize = 0x05;
pub const CTRL1000: usize = 0x09;
pub const STAT1000: usize = 0x0a;
pub const SPEC_CTRL: usize = 0x10;
pub const SPEC_STATUS: usize = 0x11;
pub const EXT_SPEC_CTRL: usize = 0x14;
pub const RX_ERR_CNTR: usize = 0x15;

pub const BMCR_ANRESTART: u16 = 1 << 9;
pub const BMCR_ANENABLE: u16 = 1 << 12;
pub const BMSR_LINK: u16 = 1 << 2;
pub const BMSR_ANEGCOMPLETE: u16 = 1 << 5;

/// PHY register 0x16 on the 82574's PHY: the page the registers from
/// 0x10 up are read on.
pub const PAGE: usize = 0x16;
/// The 82574's PHY: OEM bits (page 0), whose bit 10 restarts
/// autonegotiation.
pub const OEM_BITS: usize = 0x19;
/// The 82574 PHY's ID (PHYID2).
pub const PHYID2_82574: u16 = 0x0cb1;
/// Pages the 82574's PHY has.
const PAGES: usize = 7;

const R: u8 = 1;
const W: u8 = 2;
/// A register every page shows (82574).
const ANY: u8 = 4;

/// The 82540EM's PHY (one page).
fn access(reg: usize) -> u8 {
    match reg {
        BMCR | ANAR | CTRL1000 | SPEC_CTRL | EXT_SPEC_CTRL => R | W,
        BMSR | PHYID1 | PHYID2 | ANLPAR | STAT1000 | SPEC_STATUS | RX_ERR_CNTR => R,
        _ => 0,
    }
}

/// The 82574's PHY, per page (QEMU's `e1000e_phy_regcap`).
fn access_82574(page: usize, reg: usize) -> u8 {
    match (page, reg) {
        (_, 0x00 | 0x04 | 0x07 | 0x09 | PAGE) => ANY | R | W,
        (_, 0x01 | 0x02 | 0x03 | 0x05 | 0x06 | 0x08 | 0x0a | 0x0f) => ANY | R,
        (0, 0x10 | 0x12 | 0x14 | 0x19 | 0x1a | 0x1d | 0x1e) => R | W,
        (0, 0x11 | 0x13 | 0x15) => R,
        (2, 0x10 | 0x12 | 0x15) => R | W,
        (2, 0x13) => R,
        (3, 0x10..=0x13) => R | W,
        (5, 0x14 | 0x15) => R,
        (6, 0x11) => R,
        _ => 0,
    }
}

/// The address the PHY answers on.
const PHY_ADDR: u32 = 1;

/// Which PHY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The 82540EM's Marvell 88E1011.
    M88,
    /// The 82574's PHY with its pages.
    Bm,
}

/// The PHY's registers.
pub struct Phy {
    kind: Kind,
    regs: [[u16; 0x20]; PAGES],
}

impl Phy {
    /// The 82540EM's PHY at reset, with the link up and autonegotiation
    /// completed (as QEMU leaves it once its timer has run).
    pub fn new(link: bool) -> Self {
        let mut regs = [0u16; 0x20];
        regs[BMCR] = 0x1140;
        regs[BMSR] = 0x794d | BMSR_ANEGCOMPLETE;
        regs[PHYID1] = 0x0141;
        regs[PHYID2] = 0x0c20;
        regs[ANAR] = 0x0de1;
        regs[ANLPAR] = 0x01e0;
        regs[CTRL1000] = 0x0e00;
        regs[STAT1000] = 0x3c00;
        regs[SPEC_CTRL] = 0x0360;
        regs[SPEC_STATUS] = 0xac00;
        regs[EXT_SPEC_CTRL] = 0x0d60;
        let mut all = [[0u16; 0x20]; PAGES];
        all[0] = regs;
        let mut phy = Phy {
            kind: Kind::M88,
            regs: all,
        };
        phy.set_link(link);
        phy
    }

    /// The 82574's PHY at reset, as QEMU's `e1000e_phy_reg_init` with
    /// autonegotiation completed.
    pub fn new_82574(link: bool) -> Self {
        let mut all = [[0u16; 0x20]; PAGES];
        let p = &mut all[0];
        p[BMCR] = 0x1140;
        p[BMSR] = 0x794d | BMSR_ANEGCOMPLETE;
        p[PHYID1] = 0x0141;
        p[PHYID2] = PHYID2_82574;
        p[ANAR] = 0x0de1;
        p[ANLPAR] = 0x07e0;
        p[0x06] = 1 << 2;
        p[0x07] = (1 << 0) | (1 << 13);
        p[CTRL1000] = 0x0f00;
        p[STAT1000] = 0x3c00;
        p[0x0f] = (1 << 12) | (1 << 13);
        p[0x10] = (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 12) | (1 << 13);
        p[0x11] = (1 << 3) | (1 << 10) | (1 << 11) | (1 << 13) | (1 << 15);
        all[2][0x10] = (1 << 3) | (1 << 7);
        all[2][0x15] = (1 << 1) | (1 << 2) | (1 << 6) | (1 << 12);
        all[3][0x12] = (1 << 0) | (1 << 2) | (1 << 14);
        let mut phy = Phy {
            kind: Kind::Bm,
            regs: all,
        };
        phy.set_link(link);
        phy
    }

    pub fn set_link(&mut self, up: bool) {
        if up {
            self.regs[0][BMSR] |= BMSR_LINK;
        } else {
            self.regs[0][BMSR] &= !BMSR_LINK;
        }
    }

    /// Register `reg` of page 0.
    pub fn reg(&self, reg: usize) -> u16 {
        self.regs[0].get(reg).copied().unwrap_or(0)
    }

    /// The page and access rights of `reg` as the PHY's page register
    /// selects them; `None` past the pages there are.
    fn place(&self, reg: usize) -> Option<(usize, u8)> {
        match self.kind {
            Kind::M88 => Some((0, access(reg))),
            Kind::Bm => {
                let page = if access_82574(0, reg) & ANY != 0 {
                    0
                } else {
                    usize::from(self.regs[0][PAGE])
                };
                (page < PAGES).then(|| (page, access_82574(page, reg)))
            }
        }
    }

    /// A write of MDIC: returns what MDIC then reads (READY, the data of a
    /// read, ERROR for another PHY address or a register the access may
    /// not touch) and whether autonegotiation was restarted.
    pub fn mdic(&mut self, val: u32) -> (u32, bool) {
        let reg = ((val & mdic::REG_MASK) >> mdic::REG_SHIFT) as usize;
        let data = (val & mdic::DATA_MASK) as u16;
        let mut restarted = false;
        let place = self.place(reg);
        let out = if (val & mdic::PHY_MASK) >> mdic::PHY_SHIFT != PHY_ADDR {
            val | mdic::ERROR
        } else if val & mdic::OP_READ != 0 {
            match place {
                Some((page, a)) if a & R != 0 => {
                    (val & !mdic::DATA_MASK) | u32::from(self.regs[page][reg])
                }
                _ => val | mdic::ERROR,
            }
        } else if val & mdic::OP_WRITE != 0 {
            match place {
                Some((page, a)) if a & W != 0 => {
                    restarted = self.write(page, reg, data);
                    val
                }
                _ => val | mdic::ERROR,
            }
        } else {
            val
        };
        (out | mdic::READY, restarted)
    }

    /// Writes a register the access table allows; true if that restarted
    /// autonegotiation.
    fn write(&mut self, page: usize, reg: usize, data: u16) -> bool {
        match (self.kind, page, reg) {
            (_, 0, BMCR) => {
                let restarted = data & BMCR_ANENABLE != 0 && data & BMCR_ANRESTART != 0;
                // The restart bit clears itself (and on the 82574 reset
                // and the reserved low bits, as QEMU).
                let keep = match self.kind {
                    Kind::M88 => !BMCR_ANRESTART,
                    Kind::Bm => !(BMCR_ANRESTART | 0x8000 | 0x3f),
                };
                self.regs[0][BMCR] = data & keep;
                restarted
            }
            (Kind::Bm, _, PAGE) => {
                self.regs[0][PAGE] = data & 0x7f;
                false
            }
            (Kind::Bm, 0, OEM_BITS) => {
                self.regs[0][OEM_BITS] = data & !(1 << 10);
                data & (1 << 10) != 0
            }
            _ => {
                self.regs[page][reg] = data;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &mut Phy, reg: u32) -> u32 {
        p.mdic(mdic::OP_READ | (PHY_ADDR << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT))
            .0
    }

    #[test]
    fn the_82574_phy_has_pages() {
        let mut p = Phy::new_82574(true);
        assert_eq!(read(&mut p, 3) & 0xffff, u32::from(PHYID2_82574));
        // Page 2's MAC control 1 through the page register.
        assert_ne!(read(&mut p, 0x10) & 0xffff, 0x88);
        let w = |reg: u32, v: u32| {
            mdic::OP_WRITE | (PHY_ADDR << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT) | v
        };
        p.mdic(w(PAGE as u32, 2));
        assert_eq!(read(&mut p, 0x10) & 0xffff, 0x88);
        // Registers below 0x10 ignore the page.
        assert_eq!(read(&mut p, 2) & 0xffff, 0x141);
        p.mdic(w(PAGE as u32, 7));
        assert_ne!(read(&mut p, 0x10) & mdic::ERROR, 0, "no page 7");
        p.mdic(w(PAGE as u32, 0));
        let (_, restarted) = p.mdic(w(OEM_BITS as u32, 1 << 10));
        assert!(restarted);
        assert_eq!(p.reg(OEM_BITS), 0);
    }

    #[test]
    fn reads_writes_and_errors() {
        let mut p = Phy::new(true);
        let v = read(&mut p, 2);
        assert_eq!(v & 0xffff, 0x141);
        assert_ne!(v & mdic::READY, 0);
        assert_eq!(read(&mut p, 1) & 0xffff, 0x796d, "link up, autoneg done");
        assert_ne!(read(&mut p, 0x1f) & mdic::ERROR, 0, "unknown register");
        let other = mdic::OP_READ | (2 << mdic::PHY_SHIFT);
        assert_ne!(p.mdic(other).0 & mdic::ERROR, 0, "another PHY address");
        let w = mdic::OP_WRITE | (PHY_ADDR << mdic::PHY_SHIFT) | 0x1340;
        let (_, restarted) = p.mdic(w);
        assert!(restarted);
        assert_eq!(p.reg(BMCR), 0x1140);
        p.set_link(false);
        assert_eq!(read(&mut p, 1) & u32::from(BMSR_LINK), 0);
    }
}
