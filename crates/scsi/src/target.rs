//! What the SCSI bus answers for a LUN of a target where no device sits
//! (QEMU's `reqops_target_command`), REPORT LUNS, which the target
//! answers for every LUN, and a LUN's pending unit attention.

use crate::{be32, byte, data, op, Outcome, Sense};

/// REPORT LUNS: the target's LUNs in SAM's single-level form (flat
/// addressing above 255, as QEMU), ascending.
pub fn report_luns(cdb: &[u8], luns: &[u16]) -> Outcome {
    let alloc = be32(cdb, 6) as usize;
    // SELECT REPORT 0-2 are what QEMU answers; anything else is refused.
    if byte(cdb, 2) > 2 || alloc < 16 {
        return Outcome::Check(Sense::INVALID_FIELD);
    }
    let mut luns = luns.to_vec();
    luns.sort_unstable();
    luns.dedup();
    let mut b = vec![0u8; 8];
    b[..4].copy_from_slice(&((luns.len() * 8) as u32).to_be_bytes());
    for lun in luns {
        let mut e = [0u8; 8];
        if lun >= 256 {
            e[0] = 0x40 | (lun >> 8) as u8;
        }
        e[1] = lun as u8;
        b.extend_from_slice(&e);
    }
    data(b, alloc)
}

/// A command for a LUN no device answers: INQUIRY says nothing is there
/// (peripheral qualifier 3), REQUEST SENSE says LUN NOT SUPPORTED, the
/// rest fail with it (REPORT LUNS goes to [`report_luns`]).
pub fn no_lun(cdb: &[u8]) -> Outcome {
    match byte(cdb, 0) {
        op::INQUIRY => {
            if byte(cdb, 1) & 1 != 0 || byte(cdb, 2) != 0 {
                return Outcome::Check(Sense::INVALID_FIELD);
            }
            let mut b = vec![0u8; 36];
            b[0] = 0x7f; // qualifier 3, type 0x1f: no device
            b[2] = 5;
            b[3] = 2 | 0x10;
            b[4] = 31;
            data(b, usize::from(crate::be16(cdb, 3)))
        }
        op::REQUEST_SENSE => data(
            Sense::LUN_NOT_SUPPORTED.fixed().to_vec(),
            usize::from(byte(cdb, 4)),
        ),
        _ => Outcome::Check(Sense::LUN_NOT_SUPPORTED),
    }
}

/// A LUN's pending unit attention `ua` (after a power-on or reset) as
/// QEMU's bus reports it (`reqops_unit_attention`): INQUIRY, REPORT LUNS,
/// GET CONFIGURATION and GET EVENT STATUS NOTIFICATION pass it by (None:
/// it stays pending); REQUEST SENSE returns it as sense data; any other
/// command fails with it. Some: the answer, and the condition is cleared.
pub fn unit_attention(cdb: &[u8], ua: Sense) -> Option<Outcome> {
    match byte(cdb, 0) {
        op::INQUIRY
        | op::REPORT_LUNS
        | op::GET_CONFIGURATION
        | op::GET_EVENT_STATUS_NOTIFICATION => None,
        op::REQUEST_SENSE => Some(data(ua.fixed().to_vec(), usize::from(byte(cdb, 4)))),
        _ => Some(Outcome::Check(ua)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_luns_lists_each_lun_once_in_order() {
        let cdb = [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let Outcome::Data(b) = report_luns(&cdb, &[300, 0, 2, 2]) else {
            panic!()
        };
        assert_eq!(&b[..4], &24u32.to_be_bytes());
        assert_eq!(&b[8..10], &[0, 0]);
        assert_eq!(&b[16..18], &[0, 2]);
        assert_eq!(&b[24..26], &[0x41, 44]);
        // An allocation length under 16 is refused, as SPC says.
        let short = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0];
        assert_eq!(
            report_luns(&short, &[0]),
            Outcome::Check(Sense::INVALID_FIELD)
        );
    }

    #[test]
    fn an_empty_lun_answers_inquiry_and_refuses_the_rest() {
        let Outcome::Data(b) = no_lun(&[0x12, 0, 0, 0, 36, 0]) else {
            panic!()
        };
        assert_eq!(b[0], 0x7f);
        assert_eq!(
            no_lun(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Outcome::Check(Sense::LUN_NOT_SUPPORTED)
        );
    }

    #[test]
    fn a_unit_attention_lets_inquiry_by_and_fails_the_rest_once() {
        let ua = Sense::POWER_ON_RESET;
        assert_eq!(unit_attention(&[0x12, 0, 0, 0, 36, 0], ua), None);
        assert_eq!(unit_attention(&[0xa0; 12], ua), None);
        assert_eq!(
            unit_attention(&[0x00; 6], ua),
            Some(Outcome::Check(Sense::POWER_ON_RESET))
        );
        let Some(Outcome::Data(b)) = unit_attention(&[0x03, 0, 0, 0, 18, 0], ua) else {
            panic!()
        };
        assert_eq!((b[2], b[12], b[13]), (6, 0x29, 0));
    }
}
