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

const R: u8 = 1;
const W: u8 = 2;

fn access(reg: usize) -> u8 {
    match reg {
        BMCR | ANAR | CTRL1000 | SPEC_CTRL | EXT_SPEC_CTRL => R | W,
        BMSR | PHYID1 | PHYID2 | ANLPAR | STAT1000 | SPEC_STATUS | RX_ERR_CNTR => R,
        _ => 0,
    }
}

/// The address the 82540EM's PHY answers on.
const PHY_ADDR: u32 = 1;

/// The PHY's registers.
pub struct Phy {
    regs: [u16; 0x20],
}

impl Phy {
    /// At reset, with the link up and autonegotiation completed (as QEMU
    /// leaves it once its timer has run).
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
        let mut phy = Phy { regs };
        phy.set_link(link);
        phy
    }

    pub fn set_link(&mut self, up: bool) {
        if up {
            self.regs[BMSR] |= BMSR_LINK;
        } else {
            self.regs[BMSR] &= !BMSR_LINK;
        }
    }

    pub fn reg(&self, reg: usize) -> u16 {
        self.regs.get(reg).copied().unwrap_or(0)
    }

    /// A write of MDIC: returns what MDIC then reads (READY, the data of a
    /// read, ERROR for another PHY address or a register the access may
    /// not touch) and whether autonegotiation was restarted.
    pub fn mdic(&mut self, val: u32) -> (u32, bool) {
        let reg = ((val & mdic::REG_MASK) >> mdic::REG_SHIFT) as usize;
        let data = (val & mdic::DATA_MASK) as u16;
        let mut restarted = false;
        let out = if (val & mdic::PHY_MASK) >> mdic::PHY_SHIFT != PHY_ADDR {
            val | mdic::ERROR
        } else if val & mdic::OP_READ != 0 {
            if access(reg) & R == 0 {
                val | mdic::ERROR
            } else {
                (val & !mdic::DATA_MASK) | u32::from(self.regs[reg])
            }
        } else if val & mdic::OP_WRITE != 0 {
            if access(reg) & W == 0 {
                val | mdic::ERROR
            } else {
                if reg == BMCR {
                    restarted = data & BMCR_ANENABLE != 0 && data & BMCR_ANRESTART != 0;
                    // The restart bit clears itself.
                    self.regs[reg] = data & !BMCR_ANRESTART;
                } else {
                    self.regs[reg] = data;
                }
                val
            }
        } else {
            val
        };
        (out | mdic::READY, restarted)
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
