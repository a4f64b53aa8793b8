//! A synthetic framebuffer with a known pattern, an input sink that
//! records, and helpers shared by the tests.
#![allow(dead_code)]

use rvirt_vnc::{
    Damage, Event, Framebuffer, InputSink, KeyEvent, Mode, Options, PixelFormat, PointerEvent,
    Rect, VncServer,
};
use std::sync::{Arc, Mutex};

/// The pattern's colour at (x, y) for `seed`.
pub fn pattern(x: u32, y: u32, seed: u32) -> [u8; 3] {
    [
        (x.wrapping_mul(3).wrapping_add(seed) & 0xff) as u8,
        (y.wrapping_mul(5) & 0xff) as u8,
        (((x ^ y) + seed * 7) & 0xff) as u8,
    ]
}

struct State {
    mode: Mode,
    pixels: Vec<u8>,
    damage: Vec<Damage>,
}

/// An XRGB8888 framebuffer the test draws in.
pub struct PatternFb {
    state: Mutex<State>,
}

impl PatternFb {
    pub fn new(w: u16, h: u16, seed: u32) -> Arc<Self> {
        let fb = Arc::new(Self {
            state: Mutex::new(State {
                mode: Mode {
                    width: w,
                    height: h,
                    format: PixelFormat::XRGB8888,
                },
                pixels: Vec::new(),
                damage: Vec::new(),
            }),
        });
        fb.resize(w, h, seed);
        fb.take_damage();
        fb
    }

    fn take_damage(&self) {
        self.state.lock().unwrap().damage.clear();
    }

    /// A new mode drawn with `seed`.
    pub fn resize(&self, w: u16, h: u16, seed: u32) {
        let mut s = self.state.lock().unwrap();
        s.mode.width = w;
        s.mode.height = h;
        s.pixels = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
        for y in 0..u32::from(h) {
            for x in 0..u32::from(w) {
                let [r, g, b] = pattern(x, y, seed);
                s.pixels.extend_from_slice(&[b, g, r, 0]);
            }
        }
        s.damage.push(Damage::All);
    }

    /// Fills `r` with one colour.
    pub fn fill(&self, r: Rect, rgb: [u8; 3]) {
        let mut s = self.state.lock().unwrap();
        let w = usize::from(s.mode.width);
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                let at = (usize::from(y) * w + usize::from(x)) * 4;
                s.pixels[at..at + 4].copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0]);
            }
        }
        s.damage.push(Damage::Changed(r));
    }

    /// Moves the rows `dy..` up by `dy` and fills the exposed rows black:
    /// a scroll, reported as a copy and a change.
    pub fn scroll_up(&self, dy: u16) {
        let mut s = self.state.lock().unwrap();
        let (w, h) = (s.mode.width, s.mode.height);
        let stride = usize::from(w) * 4;
        let len = s.pixels.len();
        s.pixels.copy_within(usize::from(dy) * stride.., 0);
        s.pixels[len - usize::from(dy) * stride..].fill(0);
        s.damage.push(Damage::Copied {
            src_x: 0,
            src_y: dy,
            dst: Rect::new(0, 0, w, h - dy),
        });
        s.damage.push(Damage::Changed(Rect::new(0, h - dy, w, dy)));
    }

    /// The current screen as RGB rows.
    pub fn rgb(&self) -> (u16, u16, Vec<u8>) {
        let s = self.state.lock().unwrap();
        let rgb = s
            .pixels
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        (s.mode.width, s.mode.height, rgb)
    }
}

impl Framebuffer for PatternFb {
    fn mode(&self) -> Mode {
        self.state.lock().unwrap().mode
    }

    fn damage(&self) -> Vec<Damage> {
        std::mem::take(&mut self.state.lock().unwrap().damage)
    }

    fn read_rows(&self, y: u16, out: &mut [u8]) {
        let s = self.state.lock().unwrap();
        let at = usize::from(y) * s.mode.stride();
        let end = (at + out.len()).min(s.pixels.len());
        if at < end {
            out[..end - at].copy_from_slice(&s.pixels[at..end]);
        }
    }
}

/// What arrived at the input sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    Pointer(PointerEvent),
    Cut(Vec<u8>),
}

#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Input>>,
}

impl InputSink for Recorder {
    fn key(&self, event: KeyEvent) {
        self.events.lock().unwrap().push(Input::Key(event));
    }
    fn pointer(&self, event: PointerEvent) {
        self.events.lock().unwrap().push(Input::Pointer(event));
    }
    fn cut_text(&self, text: &[u8]) {
        self.events.lock().unwrap().push(Input::Cut(text.to_vec()));
    }
}

/// A server over a pattern, recording input and events.
pub struct Fixture {
    pub fb: Arc<PatternFb>,
    pub input: Arc<Recorder>,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub server: VncServer,
}

impl Fixture {
    pub fn new(options: Options) -> Self {
        let fb = PatternFb::new(640, 480, 1);
        let input = Arc::new(Recorder::default());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let server = VncServer::new(
            fb.clone(),
            input.clone(),
            options,
            Box::new(move |e| sink.lock().unwrap().push(e)),
        )
        .expect("start the server");
        Self {
            fb,
            input,
            events,
            server,
        }
    }

    /// Listens on 127.0.0.1 (any port); returns the port.
    pub fn listen_tcp(&self) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let addr = self.server.listen(l.into());
        assert_eq!(
            (addr.family, addr.service.clone()),
            ("ipv4", port.to_string())
        );
        port
    }
}

/// Reads a binary PPM (P6, maxval 255) as PIL writes it.
pub fn read_ppm(path: &std::path::Path) -> (u16, u16, Vec<u8>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    assert_eq!(
        (fields[0].as_str(), fields[3].as_str()),
        ("P6", "255"),
        "{}",
        path.display()
    );
    let (w, h): (u16, u16) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = data[at + 1..].to_vec();
    assert_eq!(pixels.len(), usize::from(w) * usize::from(h) * 3);
    (w, h, pixels)
}

/// Compares two RGB images; `tolerance` per channel (lossy pixel
/// formats). Names the first pixel that differs.
pub fn assert_same(
    what: &str,
    got: &(u16, u16, Vec<u8>),
    want: &(u16, u16, Vec<u8>),
    tolerance: u8,
) {
    assert_eq!((got.0, got.1), (want.0, want.1), "{what}: size");
    for (i, (g, w)) in got.2.chunks(3).zip(want.2.chunks(3)).enumerate() {
        let off = g.iter().zip(w).any(|(a, b)| a.abs_diff(*b) > tolerance);
        assert!(
            !off,
            "{what}: pixel ({}, {}) is {g:?}, expected {w:?}",
            i % usize::from(want.0),
            i / usize::from(want.0)
        );
    }
}
