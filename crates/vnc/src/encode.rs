//! Rectangle encodings: raw, zlib and ZRLE (CopyRect carries no pixels and
//! is written by the client loop). Each connection has its own zlib
//! streams: RFB's zlib encodings continue one stream over the whole
//! connection, so a client's decoder depends on every byte sent before.

use crate::framebuffer::Rect;
use crate::proto::{encoding, rect_header};
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::Write;

/// ZRLE's tile size.
const TILE: usize = 64;

/// A connection's compressed streams.
pub struct Encoder {
    level: Compression,
    zlib: Option<ZlibEncoder<Vec<u8>>>,
    zrle: Option<ZlibEncoder<Vec<u8>>>,
    scratch: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            level: Compression::new(6),
            zlib: None,
            zrle: None,
            scratch: Vec::new(),
        }
    }
}

/// Writes `data` through a stream and appends RFB's u32 length and the
/// compressed bytes (a sync flush per rectangle, so the client can decode
/// it now).
fn deflate(stream: &mut ZlibEncoder<Vec<u8>>, data: &[u8], out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = stream.write_all(data);
    let _ = stream.flush();
    let compressed = stream.get_mut();
    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    out.append(compressed);
}

impl Encoder {
    /// Sets the level for streams not started yet (a level taken from the
    /// compress-level pseudo-encodings; a running stream keeps its own).
    pub fn set_level(&mut self, level: u32) {
        self.level = Compression::new(level.min(9));
    }

    /// A raw rectangle: `pixels` are the client's, row after row.
    pub fn raw(out: &mut Vec<u8>, rect: Rect, pixels: &[u8]) {
        rect_header(out, rect, encoding::RAW);
        out.extend_from_slice(pixels);
    }

    /// A zlib rectangle.
    pub fn zlib(&mut self, out: &mut Vec<u8>, rect: Rect, pixels: &[u8]) {
        rect_header(out, rect, encoding::ZLIB);
        let level = self.level;
        let stream = self
            .zlib
            .get_or_insert_with(|| ZlibEncoder::new(Vec::new(), level));
        deflate(stream, pixels, out);
    }

    /// A ZRLE rectangle: 64x64 tiles, each solid or raw, in compressed
    /// pixels (`cpixel`: the bytes of a client pixel that are sent).
    pub fn zrle(
        &mut self,
        out: &mut Vec<u8>,
        rect: Rect,
        pixels: &[u8],
        bpp: usize,
        cpixel: std::ops::Range<usize>,
    ) {
        rect_header(out, rect, encoding::ZRLE);
        let (w, h) = (usize::from(rect.w), usize::from(rect.h));
        let tiles = &mut self.scratch;
        tiles.clear();
        for ty in (0..h).step_by(TILE) {
            for tx in (0..w).step_by(TILE) {
                let (tw, th) = (TILE.min(w - tx), TILE.min(h - ty));
                let px = |x: usize, y: usize| {
                    let at = ((ty + y) * w + tx + x) * bpp;
                    &pixels[at..at + bpp]
                };
                let first = px(0, 0);
                let solid = (0..th).all(|y| (0..tw).all(|x| px(x, y) == first));
                if solid {
                    tiles.push(1);
                    tiles.extend_from_slice(&first[cpixel.clone()]);
                } else {
                    tiles.push(0);
                    for y in 0..th {
                        for x in 0..tw {
                            tiles.extend_from_slice(&px(x, y)[cpixel.clone()]);
                        }
                    }
                }
            }
        }
        let level = self.level;
        let stream = self
            .zrle
            .get_or_insert_with(|| ZlibEncoder::new(Vec::new(), level));
        deflate(stream, tiles, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(data, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn zlib_is_one_stream() {
        let mut e = Encoder::default();
        let mut d = Decompress::new(true);
        for round in 0..3u8 {
            let pixels = vec![round; 4 * 16 * 16];
            let mut out = Vec::new();
            e.zlib(&mut out, Rect::new(0, 0, 16, 16), &pixels);
            let len = u32::from_be_bytes(out[12..16].try_into().unwrap()) as usize;
            assert_eq!(out.len(), 16 + len);
            assert_eq!(inflate(&mut d, &out[16..]), pixels);
        }
    }

    #[test]
    fn zrle_tiles() {
        // 70x2: a raw 64-wide tile, then a solid 6-wide one.
        let (w, h) = (70usize, 2usize);
        let mut pixels = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v: u32 = if x < 64 { (x + y) as u32 } else { 0x00ab_cdef };
                pixels.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut e = Encoder::default();
        let mut out = Vec::new();
        e.zrle(
            &mut out,
            Rect::new(0, 0, w as u16, h as u16),
            &pixels,
            4,
            0..3,
        );
        let tiles = inflate(&mut Decompress::new(true), &out[16..]);
        assert_eq!(tiles[0], 0);
        assert_eq!(tiles.len(), 1 + 64 * 2 * 3 + 1 + 3);
        assert_eq!(&tiles[1 + 64 * 2 * 3..], [1, 0xef, 0xcd, 0xab]);
    }
}
