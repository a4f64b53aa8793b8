//! The server against a client written here, byte by byte: the protocol
//! versions, the zlib stream, the share policies, clients passed by file
//! descriptor, and what a bad client gets: malformed messages, absurd
//! lengths, a client that stops reading.

mod common;

use common::{assert_same, Fixture, Input};
use flate2::{Decompress, FlushDecompress};
use rvirt_testkit::{read_exact, read_to_end, wait_for};
use rvirt_vnc::{vnc_auth_response, Options, PixelFormat, Rect, SharePolicy};
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

fn u32_of(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

struct Raw<S> {
    s: S,
}

impl<S: std::io::Read + Write + std::os::fd::AsFd> Raw<S> {
    fn read(&mut self, n: usize) -> Vec<u8> {
        read_exact(&mut self.s, n, LIMIT)
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Version, security None as the server offers it, ClientInit;
    /// returns the framebuffer size.
    fn handshake(&mut self, version: &[u8; 12], shared: bool) -> (u16, u16) {
        assert_eq!(self.read(12), b"RFB 003.008\n");
        self.send(version);
        if version == b"RFB 003.003\n" {
            assert_eq!(u32_of(&self.read(4)), 1);
        } else {
            assert_eq!(self.read(2), [1, 1]);
            self.send(&[1]);
            if version == b"RFB 003.008\n" {
                assert_eq!(u32_of(&self.read(4)), 0);
            }
        }
        self.send(&[u8::from(shared)]);
        self.server_init()
    }

    fn server_init(&mut self) -> (u16, u16) {
        let init = self.read(24);
        assert_eq!(&init[4..20], &PixelFormat::XRGB8888.to_bytes());
        let name_len = u32_of(&init[20..]) as usize;
        assert_eq!(self.read(name_len), b"rvirt");
        (
            u16::from_be_bytes([init[0], init[1]]),
            u16::from_be_bytes([init[2], init[3]]),
        )
    }

    fn request(&mut self, incremental: bool, r: Rect) {
        let mut m = vec![3, u8::from(incremental)];
        for v in [r.x, r.y, r.w, r.h] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        self.send(&m);
    }

    /// The server's end of the connection (after what it sent last).
    fn assert_closed(&mut self, what: &str) {
        let started = Instant::now();
        let rest = read_to_end(&mut self.s, LIMIT);
        assert!(rest.len() < 1 << 16, "{what}: {} more bytes", rest.len());
        assert!(started.elapsed() < LIMIT, "{what}: not closed");
    }
}

fn tcp(port: u16) -> Raw<TcpStream> {
    Raw {
        s: TcpStream::connect(("127.0.0.1", port)).unwrap(),
    }
}

#[test]
fn versions_3_3_and_3_7_and_unknown() {
    let fx = Fixture::new(Options::default());
    let port = fx.listen_tcp();
    assert_eq!(tcp(port).handshake(b"RFB 003.003\n", true), (640, 480));
    assert_eq!(tcp(port).handshake(b"RFB 003.007\n", true), (640, 480));
    let mut c = tcp(port);
    assert_eq!(c.read(12), b"RFB 003.008\n");
    c.send(b"RFB 004.000\n");
    assert_eq!(u32_of(&c.read(4)), 0);
    c.assert_closed("unknown version");
}

#[test]
fn vnc_auth_in_3_3_and_reasons_in_3_8() {
    let fx = Fixture::new(Options {
        password_auth: true,
        ..Options::default()
    });
    fx.server.set_password("secret").unwrap();
    let port = fx.listen_tcp();
    let mut c = tcp(port);
    c.read(12);
    c.send(b"RFB 003.003\n");
    assert_eq!(u32_of(&c.read(4)), 2);
    let challenge: [u8; 16] = c.read(16).try_into().unwrap();
    c.send(&vnc_auth_response(b"secret", &challenge));
    assert_eq!(u32_of(&c.read(4)), 0);
    c.send(&[1]);
    assert_eq!(c.server_init(), (640, 480));
    let mut c = tcp(port);
    c.read(12);
    c.send(b"RFB 003.008\n");
    assert_eq!(c.read(2), [1, 2]);
    c.send(&[2]);
    let challenge: [u8; 16] = c.read(16).try_into().unwrap();
    c.send(&vnc_auth_response(b"wrong", &challenge));
    assert_eq!(u32_of(&c.read(4)), 1);
    let len = u32_of(&c.read(4)) as usize;
    // QEMU's reason, with the NUL of its C string.
    assert_eq!(c.read(len), b"Authentication failed\0");
    c.assert_closed("wrong password");
}

/// Decodes one FramebufferUpdate of zlib rectangles onto `screen` (RGB).
fn zlib_update(c: &mut Raw<TcpStream>, z: &mut Decompress, screen: &mut (u16, u16, Vec<u8>)) {
    let head = c.read(4);
    assert_eq!(head[0], 0, "FramebufferUpdate");
    for _ in 0..u16::from_be_bytes([head[2], head[3]]) {
        let r = c.read(12);
        let v = |i: usize| usize::from(u16::from_be_bytes([r[i], r[i + 1]]));
        let (x, y, w, h) = (v(0), v(2), v(4), v(6));
        assert_eq!(u32_of(&r[8..]), 6, "zlib encoding");
        let len = u32_of(&c.read(4)) as usize;
        let data = c.read(len);
        let mut px = Vec::with_capacity(w * h * 4);
        z.decompress_vec(&data, &mut px, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(px.len(), w * h * 4);
        for row in 0..h {
            for col in 0..w {
                let p = &px[(row * w + col) * 4..];
                let at = ((y + row) * usize::from(screen.0) + x + col) * 3;
                screen.2[at..at + 3].copy_from_slice(&[p[2], p[1], p[0]]);
            }
        }
    }
}

#[test]
fn zlib_one_stream_over_updates() {
    let fx = Fixture::new(Options::default());
    let mut c = tcp(fx.listen_tcp());
    c.handshake(b"RFB 003.008\n", true);
    c.send(&[2, 0, 0, 1, 0, 0, 0, 6]);
    let mut z = Decompress::new(true);
    let mut screen = (640, 480, vec![0u8; 640 * 480 * 3]);
    c.request(false, Rect::screen(640, 480));
    zlib_update(&mut c, &mut z, &mut screen);
    assert_same("zlib full", &screen, &fx.fb.rgb(), 0);
    fx.fb.fill(Rect::new(5, 7, 30, 20), [1, 2, 3]);
    c.request(true, Rect::screen(640, 480));
    zlib_update(&mut c, &mut z, &mut screen);
    assert_same("zlib incremental", &screen, &fx.fb.rgb(), 0);
    // A request far outside the screen is clipped, not refused.
    c.request(false, Rect::new(600, 400, 65535, 65535));
    zlib_update(&mut c, &mut z, &mut screen);
    assert_same("zlib clipped", &screen, &fx.fb.rgb(), 0);
}

#[test]
fn malformed_input_disconnects_that_client_only() {
    let fx = Fixture::new(Options::default());
    let port = fx.listen_tcp();
    let bad: [(&str, Vec<u8>); 5] = [
        ("unknown message type", vec![7, 0, 0, 0]),
        (
            "cut text of 4 GiB",
            vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ),
        ("cut text just over 1 MiB", vec![6, 0, 0, 0, 0, 0x10, 0, 1]),
        ("24-bit pixel format", {
            let mut m = vec![0, 0, 0, 0];
            m.extend_from_slice(
                &PixelFormat {
                    bits_per_pixel: 24,
                    ..PixelFormat::XRGB8888
                }
                .to_bytes(),
            );
            m
        }),
        ("qemu message subtype 9", vec![255, 9, 0, 0]),
    ];
    let mut good = tcp(port);
    good.handshake(b"RFB 003.008\n", true);
    for (what, msg) in bad {
        let mut c = tcp(port);
        c.handshake(b"RFB 003.008\n", true);
        c.send(&msg);
        c.assert_closed(what);
    }
    let mut c = tcp(port);
    c.read(12);
    c.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(u32_of(&c.read(4)), 0);
    c.assert_closed("garbage version");
    // A bounded cut text reaches the sink; the first client still works.
    good.send(&[6, 0, 0, 0, 0, 0, 0, 5]);
    good.send(b"hello");
    good.request(false, Rect::new(0, 0, 2, 1));
    let update = good.read(4 + 12 + 8);
    let [r, g, b] = common::pattern(1, 0, 1);
    assert_eq!(&update[20..24], &[b, g, r, 0]);
    wait_for("the cut text", LIMIT, || {
        fx.input
            .events
            .lock()
            .unwrap()
            .contains(&Input::Cut(b"hello".to_vec()))
    });
    wait_for("bad clients gone", LIMIT, || fx.server.clients().len() == 1);
}

#[test]
fn a_client_that_stops_reading_is_dropped_others_go_on() {
    let fx = Fixture::new(Options::default());
    let port = fx.listen_tcp();
    let mut stuck = tcp(port);
    stuck.handshake(b"RFB 003.008\n", true);
    let mut other = tcp(port);
    other.handshake(b"RFB 003.008\n", true);
    // Full updates asked for and never read: about 1.2 MB each.
    let deadline = Instant::now() + LIMIT;
    let mut m = vec![3, 0, 0, 0, 0, 0, 2, 128, 1, 224];
    m.extend_from_slice(&m.clone());
    let dropped = loop {
        assert!(
            Instant::now() < deadline,
            "the client that does not read was never dropped"
        );
        if stuck.s.write_all(&m).is_err() {
            break true;
        }
        if fx.server.clients().len() == 1 {
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(dropped);
    wait_for("the stuck client's removal", LIMIT, || {
        fx.server.clients().len() == 1
    });
    // The other client is served as before.
    other.request(false, Rect::new(0, 0, 1, 1));
    let update = other.read(4 + 12 + 4);
    let [r, g, b] = common::pattern(0, 0, 1);
    assert_eq!(&update[16..], &[b, g, r, 0]);
}

#[test]
fn share_policies() {
    // allow-exclusive: an exclusive client disconnects the shared one,
    // and shared clients are refused while it is there.
    let fx = Fixture::new(Options::default());
    let port = fx.listen_tcp();
    let mut shared = tcp(port);
    shared.handshake(b"RFB 003.008\n", true);
    let mut exclusive = tcp(port);
    exclusive.handshake(b"RFB 003.008\n", false);
    shared.assert_closed("shared client after an exclusive one");
    let mut late = tcp(port);
    late.read(12);
    late.send(b"RFB 003.008\n");
    late.read(2);
    late.send(&[1]);
    late.read(4);
    late.send(&[1]);
    late.assert_closed("shared client while an exclusive one is connected");
    drop(exclusive);
    // force-shared: exclusive clients are refused.
    let fx = Fixture::new(Options {
        share: SharePolicy::ForceShared,
        ..Options::default()
    });
    let port = fx.listen_tcp();
    let mut a = tcp(port);
    a.handshake(b"RFB 003.008\n", true);
    let mut b = tcp(port);
    b.read(12);
    b.send(b"RFB 003.008\n");
    b.read(2);
    b.send(&[1]);
    b.read(4);
    b.send(&[0]);
    b.assert_closed("exclusive client under force-shared");
    // ignore: everyone stays.
    let fx = Fixture::new(Options {
        share: SharePolicy::Ignore,
        ..Options::default()
    });
    let port = fx.listen_tcp();
    let mut a = tcp(port);
    a.handshake(b"RFB 003.008\n", false);
    let mut b = tcp(port);
    b.handshake(b"RFB 003.008\n", false);
    a.request(false, Rect::new(0, 0, 1, 1));
    assert_eq!(a.read(20).len(), 20);
    assert_eq!(fx.server.clients().len(), 2);
}

#[test]
fn client_by_file_descriptor_skips_auth() {
    let fx = Fixture::new(Options {
        password_auth: true,
        ..Options::default()
    });
    let (ours, theirs) = UnixStream::pair().unwrap();
    fx.server.add_client(theirs.into(), true);
    let mut c = Raw { s: ours };
    assert_eq!(c.handshake(b"RFB 003.008\n", true), (640, 480));
    // No listener: the events carry no server address.
    wait_for("the initialized event", LIMIT, || {
        fx.events.lock().unwrap().len() == 2
    });
    assert!(matches!(
        &fx.events.lock().unwrap()[1],
        rvirt_vnc::Event::Initialized { server: None, .. }
    ));
    assert_eq!(fx.server.listening(), None);
    // Without skip_auth the password is asked.
    let (ours, theirs) = UnixStream::pair().unwrap();
    fx.server.add_client(theirs.into(), false);
    let mut c = Raw { s: ours };
    c.read(12);
    c.send(b"RFB 003.008\n");
    assert_eq!(c.read(2), [1, 2]);
}

#[test]
fn client_limit_and_handshake_deadline() {
    let fx = Fixture::new(Options {
        max_clients: 1,
        handshake_limit: Duration::from_millis(500),
        ..Options::default()
    });
    let port = fx.listen_tcp();
    let mut first = tcp(port);
    first.handshake(b"RFB 003.008\n", true);
    // Over the limit: closed before the version line.
    let mut second = tcp(port);
    assert_eq!(
        read_to_end(&mut second.s, LIMIT),
        "",
        "a client over the limit was served"
    );
    drop(first);
    wait_for("the first client's removal", LIMIT, || {
        fx.server.clients().is_empty()
    });
    // A client that never answers the version line is dropped at the
    // handshake's deadline.
    let started = Instant::now();
    let mut silent = tcp(port);
    assert_eq!(silent.read(12), b"RFB 003.008\n");
    silent.assert_closed("silent client");
    assert!(started.elapsed() >= Duration::from_millis(500));
}
