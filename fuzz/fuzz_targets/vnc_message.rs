//! Arbitrary bytes as what a VNC client sends after the handshake, parsed
//! message by message as rvirt-vnc's client loop does (the first 12 bytes
//! also as a version line). Nothing may panic; every message takes at least
//! one byte and no more than there are; a pixel format that parses converts
//! a row of pixels into exactly its size; a requested rectangle clips inside
//! the screen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_vnc::proto::{self, ClientMessage};
use rvirt_vnc::{Converter, PixelFormat, Rect};

fuzz_target!(|data: &[u8]| {
    if let Some(line) = data.get(..12) {
        let _ = proto::parse_version(line.try_into().unwrap());
    }
    let mut rest = data;
    loop {
        match proto::parse(rest) {
            Ok(Some((msg, used))) => {
                assert!(used > 0 && used <= rest.len());
                check(&msg);
                rest = &rest[used..];
            }
            // Incomplete: the client loop waits for more (bounded by
            // MAX_MESSAGE), or the client is disconnected.
            Ok(None) => {
                assert!(rest.len() < proto::MAX_MESSAGE);
                break;
            }
            Err(_) => break,
        }
    }
});

fn check(msg: &ClientMessage) {
    match msg {
        ClientMessage::SetPixelFormat(f) => {
            let src: Vec<u8> = (0..64u8).collect();
            let mut out = Vec::new();
            Converter::new(PixelFormat::XRGB8888, *f).convert(&src, &mut out);
            assert_eq!(out.len(), 16 * f.bytes_per_pixel());
        }
        ClientMessage::UpdateRequest { rect, .. } => {
            if let Some(c) = rect.clip(640, 480) {
                assert!(Rect::screen(640, 480).contains(&c) && !c.is_empty());
            }
            let u = rect.union(&Rect::new(10, 10, 5, 5));
            assert!(u.contains(&Rect::new(10, 10, 5, 5)) || u.w == u16::MAX || u.h == u16::MAX);
        }
        ClientMessage::CutText(t) => assert!(t.len() <= proto::MAX_CUT_TEXT as usize),
        _ => {}
    }
}
