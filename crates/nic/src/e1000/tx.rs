//! The transmit path's descriptors: legacy descriptors, and the context
//! and data descriptors of the extended format with IP and TCP/UDP
//! checksum insertion and TCP segmentation (TSO), done in software as
//! QEMU's e1000 does them (the frames leave complete, so every back-end
//! takes them).
//!
//! Pure: the descriptors' buffers are read through a callback and frames
//! leave through another, so the path is tested and fuzzed without guest
//! memory. Whatever the guest writes, a frame never grows past
//! [`MAX_PACKET`], every offset the context names is checked against the
//! frame before it is used, and each descriptor takes bounded work.

/// The largest frame (or TSO header plus segment) the card assembles, as
/// QEMU's 64 KiB buffer.
pub const MAX_PACKET: usize = 0x10000;
/// A descriptor's size in the ring.
pub const DESC_LEN: usize = 16;

/// Descriptor command bits (in the second dword).
pub mod cmd {
    pub const EOP: u32 = 1 << 24;
    pub const IFCS: u32 = 1 << 25;
    pub const IC: u32 = 1 << 26;
    pub const RS: u32 = 1 << 27;
    pub const RPS: u32 = 1 << 28;
    pub const DEXT: u32 = 1 << 29;
    pub const VLE: u32 = 1 << 30;
    pub const IDE: u32 = 1 << 31;
    /// DTYP: a data descriptor (with DEXT).
    pub const DTYP_D: u32 = 1 << 20;
    /// TUCMD in a context descriptor, TSE in a data descriptor.
    pub const TCP: u32 = 1 << 24;
    pub const IP: u32 = 1 << 25;
    pub const TSE: u32 = 1 << 26;
}

/// POPTS, the per-packet offloads of a data descriptor (third dword, byte 1).
pub mod popts {
    pub const IXSM: u8 = 1 << 0;
    pub const TXSM: u8 = 1 << 1;
}

/// The status byte's Descriptor Done bit, written back when RS asks.
pub const STAT_DD: u8 = 1 << 0;

/// What a context descriptor sets up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub ipcss: u8,
    pub ipcso: u8,
    pub ipcse: u16,
    pub tucss: u8,
    pub tucso: u8,
    pub tucse: u16,
    pub paylen: u32,
    pub hdr_len: u8,
    pub mss: u16,
    pub ip: bool,
    pub tcp: bool,
}

impl Context {
    fn parse(d: &[u8; DESC_LEN]) -> Self {
        let op = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        Context {
            ipcss: d[0],
            ipcso: d[1],
            ipcse: u16::from_le_bytes([d[2], d[3]]),
            tucss: d[4],
            tucso: d[5],
            tucse: u16::from_le_bytes([d[6], d[7]]),
            paylen: op & 0xf_ffff,
            hdr_len: d[13],
            mss: u16::from_le_bytes([d[14], d[15]]),
            ip: op & cmd::IP != 0,
            tcp: op & cmd::TCP != 0,
        }
    }
}

/// The second dword (length, CSO, command) of descriptor `d`.
pub fn lower(d: &[u8; DESC_LEN]) -> u32 {
    u32::from_le_bytes([d[8], d[9], d[10], d[11]])
}

/// Whether the card writes the descriptor's status back (RS or RPS).
pub fn wants_writeback(d: &[u8; DESC_LEN]) -> bool {
    lower(d) & (cmd::RS | cmd::RPS) != 0
}

/// Counts of what left, for the statistics registers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub frames: u32,
    pub bytes: u64,
}

/// The packet being assembled across descriptors.
pub struct TxPath {
    data: Vec<u8>,
    header: Vec<u8>,
    /// The plain and the TSO contexts (a driver keeps one of each).
    props: Context,
    tso: Context,
    sum_needed: u8,
    /// The packet being assembled is segmented (its data descriptors'
    /// TSE).
    cptse: bool,
    tso_frames: u16,
    /// A buffer of this packet could not be read: the packet is dropped at
    /// its end of packet.
    broken: bool,
}

impl Default for TxPath {
    fn default() -> Self {
        TxPath {
            data: Vec::with_capacity(MAX_PACKET),
            header: Vec::new(),
            props: Context::default(),
            tso: Context::default(),
            sum_needed: 0,
            cptse: false,
            tso_frames: 0,
            broken: false,
        }
    }
}

/// The Internet checksum of `bytes`, not yet complemented.
fn sum16(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Inserts the checksum of `data[css..=cse]` (to the end when `cse` is 0)
/// at `sloc`, as the hardware does; offsets outside the frame insert
/// nothing.
fn putsum(data: &mut [u8], sloc: usize, css: usize, cse: usize) {
    let mut n = data.len();
    if cse != 0 && cse < n {
        n = cse + 1;
    }
    if css >= n || sloc + 1 >= n {
        return;
    }
    let sum = finish(sum16(&data[css..n]));
    // A computed zero is sent as all ones, as QEMU's
    // net_checksum_finish_nozero (UDP's "no checksum" would be wrong).
    put16(data, sloc, if sum == 0 { 0xffff } else { sum });
}

impl TxPath {
    /// The packet under assembly is dropped (a reset, a disabled TCTL).
    pub fn clear(&mut self) {
        self.data.clear();
        self.sum_needed = 0;
        self.cptse = false;
        self.tso_frames = 0;
        self.broken = false;
    }

    /// Processes descriptor `d`: reads its buffer through `read` (false:
    /// the address is not guest memory) and hands each finished frame to
    /// `send`.
    pub fn process(
        &mut self,
        d: &[u8; DESC_LEN],
        read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
        send: &mut dyn FnMut(&[u8]),
    ) -> Sent {
        let mut sent = Sent::default();
        let lower = lower(d);
        let dtype = lower & (cmd::DEXT | cmd::DTYP_D);
        if dtype == cmd::DEXT {
            let ctx = Context::parse(d);
            if lower & cmd::TSE != 0 {
                self.tso = ctx;
                self.tso_frames = 0;
            } else {
                self.props = ctx;
            }
            return sent;
        }
        if dtype == cmd::DEXT | cmd::DTYP_D {
            if self.data.is_empty() {
                self.sum_needed = d[13];
            }
            self.cptse = lower & cmd::TSE != 0;
        } else {
            self.cptse = false;
        }
        let mut addr = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        let mut split = (lower & 0xffff) as usize;
        let mut take = |this: &mut Self, addr: u64, bytes: usize| {
            let at = this.data.len();
            this.data.resize(at + bytes, 0);
            if !read(addr, &mut this.data[at..]) {
                this.broken = true;
            }
        };
        if self.cptse {
            let hdr = usize::from(self.tso.hdr_len);
            let msh = hdr + usize::from(self.tso.mss);
            loop {
                if self.data.len() >= msh {
                    break;
                }
                let bytes = split
                    .min(msh - self.data.len())
                    .min(MAX_PACKET - self.data.len());
                if bytes == 0 {
                    break;
                }
                let before = self.data.len();
                take(self, addr, bytes);
                if self.data.len() >= hdr && before < hdr {
                    self.header = self.data[..hdr].to_vec();
                }
                addr = addr.wrapping_add(bytes as u64);
                if self.data.len() == msh {
                    self.xmit_seg(send, &mut sent);
                    self.data.clear();
                    self.data.extend_from_slice(&self.header);
                }
                split -= bytes;
                if split == 0 {
                    break;
                }
            }
        } else {
            let bytes = split.min(MAX_PACKET - self.data.len());
            take(self, addr, bytes);
        }
        if lower & cmd::EOP == 0 {
            return sent;
        }
        if !(self.cptse && self.data.len() < usize::from(self.tso.hdr_len)) {
            self.xmit_seg(send, &mut sent);
        }
        self.clear();
        sent
    }

    /// Sends the assembled frame (one TSO segment, with its IP length and
    /// ID, TCP sequence number and flags or UDP length fixed up), with the
    /// checksums asked for.
    fn xmit_seg(&mut self, send: &mut dyn FnMut(&[u8]), sent: &mut Sent) {
        let props = if self.cptse { self.tso } else { self.props };
        let size = self.data.len();
        if self.cptse {
            let frames = self.tso_frames;
            let css = usize::from(props.ipcss);
            if props.ip {
                put16(&mut self.data, css + 2, size.saturating_sub(css) as u16);
                if let Some(id) = get16(&self.data, css + 4) {
                    put16(&mut self.data, css + 4, id.wrapping_add(frames));
                }
            } else {
                put16(&mut self.data, css + 4, size.saturating_sub(css) as u16);
            }
            let css = usize::from(props.tucss);
            let len = size.saturating_sub(css) as u16;
            if props.tcp {
                let sofar = u32::from(frames) * u32::from(props.mss);
                if let Some(seq) = self.data.get_mut(css + 4..css + 8) {
                    let v = u32::from_be_bytes(seq.try_into().expect("4 bytes"));
                    seq.copy_from_slice(&v.wrapping_add(sofar).to_be_bytes());
                }
                if props.paylen.wrapping_sub(sofar) > u32::from(props.mss) {
                    // Not the last segment: no PSH or FIN yet.
                    if let Some(flags) = self.data.get_mut(css + 13) {
                        *flags &= !9;
                    }
                }
            } else {
                put16(&mut self.data, css + 4, len);
            }
            if self.sum_needed & popts::TXSM != 0 {
                // The driver seeded the pseudo-header sum without the
                // length; add this segment's.
                let at = usize::from(props.tucso);
                if let Some(v) = get16(&self.data, at) {
                    let s = u32::from(v) + u32::from(len);
                    put16(&mut self.data, at, ((s >> 16) + (s & 0xffff)) as u16);
                }
            }
            self.tso_frames = self.tso_frames.wrapping_add(1);
        }
        if self.sum_needed & popts::TXSM != 0 {
            putsum(
                &mut self.data,
                usize::from(props.tucso),
                usize::from(props.tucss),
                usize::from(props.tucse),
            );
        }
        if self.sum_needed & popts::IXSM != 0 {
            putsum(
                &mut self.data,
                usize::from(props.ipcso),
                usize::from(props.ipcss),
                usize::from(props.ipcse),
            );
        }
        if self.broken || self.data.is_empty() {
            return;
        }
        send(&self.data);
        sent.frames += 1;
        sent.bytes += self.data.len() as u64;
    }
}

#[cfg(test)]
mod tests;
