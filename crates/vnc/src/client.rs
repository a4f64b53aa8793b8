//! One client: its thread (handshake, then messages in and updates out)
//! and what other threads share with it (its pending damage, a wake-up,
//! the request to disconnect).

use crate::auth;
use crate::encode::Encoder;
use crate::framebuffer::{Damage, Mode, PixelFormat, Rect};
use crate::input::PointerEvent;
use crate::pixel::{cpixel_range, Converter};
use crate::proto::{self, encoding, security, ClientMessage, ProtoError, Version};
use crate::server::{lock, AddrInfo, Event, Inner, SharePolicy};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, Shutdown};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Pending damage past this many rectangles collapses into their union.
const MAX_DIRTY: usize = 32;

/// An eventfd another thread writes to wake a thread in `poll`.
pub(crate) struct Wake {
    pub fd: OwnedFd,
}

impl Wake {
    pub fn new() -> std::io::Result<Self> {
        let fd = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { fd })
    }

    pub fn wake(&self) {
        // A full counter already wakes the reader.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut b);
    }
}

/// What changed on the screen since this client's last update.
#[derive(Debug, Default)]
struct Pending {
    all: bool,
    dirty: Vec<Rect>,
    /// In the order they happened: (src_x, src_y, dst).
    copies: Vec<(u16, u16, Rect)>,
}

impl Pending {
    fn mark(&mut self, r: Rect) {
        if self.all || r.is_empty() {
            return;
        }
        self.dirty.push(r);
        if self.dirty.len() > MAX_DIRTY {
            let union = self.dirty.iter().fold(Rect::default(), |u, r| u.union(r));
            self.dirty = vec![union];
        }
    }

    fn add(&mut self, d: &Damage) {
        match *d {
            Damage::Changed(r) => self.mark(r),
            Damage::All => {
                self.all = true;
                self.dirty.clear();
                self.copies.clear();
            }
            Damage::Copied { src_x, src_y, dst } => {
                if self.all {
                    return;
                }
                // The client's copy of the source must be current.
                let src = Rect::new(src_x, src_y, dst.w, dst.h);
                if self.dirty.iter().any(|r| r.intersect(&src).is_some()) {
                    self.mark(dst);
                } else {
                    self.copies.push((src_x, src_y, dst));
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.dirty.is_empty() && self.copies.is_empty()
    }
}

const MODE_CONNECTING: u8 = 0;
const MODE_SHARED: u8 = 1;
const MODE_EXCLUSIVE: u8 = 2;

/// What the server's other threads share with a client's thread.
pub(crate) struct ClientShared {
    pub id: u64,
    pub info: AddrInfo,
    fd: OwnedFd,
    wake: Wake,
    pending: Mutex<Pending>,
    /// Why another thread wants it gone.
    closing: Mutex<Option<&'static str>>,
    share: AtomicU8,
}

impl ClientShared {
    pub fn new(id: u64, info: AddrInfo, fd: OwnedFd) -> std::io::Result<Self> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Self {
            id,
            info,
            fd,
            wake: Wake::new()?,
            pending: Mutex::new(Pending::default()),
            closing: Mutex::new(None),
            share: AtomicU8::new(MODE_CONNECTING),
        })
    }

    pub fn add_damage(&self, damage: &[Damage]) {
        let mut p = lock(&self.pending);
        for d in damage {
            p.add(d);
        }
        drop(p);
        self.wake.wake();
    }

    /// Asks the client's thread to disconnect; a handshake waiting on the
    /// socket sees its end at once.
    pub fn disconnect(&self, why: &'static str) {
        lock(&self.closing).get_or_insert(why);
        let _ = rustix::net::shutdown(&self.fd, Shutdown::Read);
        self.wake.wake();
    }
}

/// Why a client was disconnected (logged with its address).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("client closed the connection")]
    Closed,
    #[error("socket error")]
    Io(#[from] std::io::Error),
    #[error("handshake not finished in time")]
    Timeout,
    #[error("malformed input")]
    Proto(#[from] ProtoError),
    #[error("{0}")]
    Refused(&'static str),
    #[error("output queue over {0} bytes: the client is not reading")]
    Overflow(usize),
}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> Self {
        ClientError::Io(e.into())
    }
}

/// The socket with its input buffer and bounded output queue.
struct Conn<'a> {
    shared: &'a ClientShared,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
}

impl Conn<'_> {
    fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Waits up to `timeout` for the socket or a wake-up, then reads what
    /// arrived and writes what the socket takes.
    fn pump(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        if let Some(why) = *lock(&self.shared.closing) {
            return Err(ClientError::Refused(why));
        }
        let mut want = PollFlags::empty();
        if self.inbuf.len() < proto::MAX_MESSAGE {
            want |= PollFlags::IN;
        }
        if self.queued() > 0 {
            want |= PollFlags::OUT;
        }
        let ts = timeout.map(|t| {
            Timespec::try_from(t).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            })
        });
        let mut fds = [
            PollFd::new(&self.shared.fd, want),
            PollFd::new(&self.shared.wake, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let (sock, woken) = (fds[0].revents(), fds[1].revents());
        if !woken.is_empty() {
            self.shared.wake.drain();
        }
        // Asked to go (the read side is shut down then): say why, not
        // that the socket ended.
        if let Some(why) = *lock(&self.shared.closing) {
            return Err(ClientError::Refused(why));
        }
        if sock.intersects(PollFlags::OUT | PollFlags::ERR) && self.queued() > 0 {
            self.write()?;
        }
        if sock.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            self.read()?;
        }
        if let Some(why) = *lock(&self.shared.closing) {
            return Err(ClientError::Refused(why));
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), ClientError> {
        while self.queued() > 0 {
            // NOSIGNAL: a client gone must not kill the VMM with SIGPIPE.
            match rustix::net::send(&self.shared.fd, &self.out[self.sent..], SendFlags::NOSIGNAL) {
                Ok(n) => self.sent += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > 1 << 20 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    fn read(&mut self) -> Result<(), ClientError> {
        let room = (proto::MAX_MESSAGE - self.inbuf.len()).min(64 * 1024);
        let start = self.inbuf.len();
        self.inbuf.resize(start + room, 0);
        let got = rustix::net::recv(
            &self.shared.fd,
            &mut self.inbuf[start..],
            RecvFlags::empty(),
        );
        let n = match got {
            Ok((_, n)) => n,
            Err(Errno::AGAIN) | Err(Errno::INTR) => 0,
            Err(e) => {
                self.inbuf.truncate(start);
                return Err(e.into());
            }
        };
        self.inbuf.truncate(start + n);
        if n == 0 && got.is_ok() {
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    fn flush(&mut self, deadline: Instant) -> Result<(), ClientError> {
        while self.queued() > 0 {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or(ClientError::Timeout)?;
            self.pump(Some(left))?;
        }
        Ok(())
    }

    fn read_exact<const N: usize>(&mut self, deadline: Instant) -> Result<[u8; N], ClientError> {
        self.flush(deadline)?;
        while self.inbuf.len() < N {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or(ClientError::Timeout)?;
            self.pump(Some(left))?;
        }
        let mut b = [0u8; N];
        b.copy_from_slice(&self.inbuf[..N]);
        self.inbuf.drain(..N);
        Ok(b)
    }
}

/// The client's thread.
pub(crate) fn serve(server: Arc<Inner>, shared: Arc<ClientShared>, skip_auth: bool) {
    let mut session = Session {
        server: &server,
        conn: Conn {
            shared: &shared,
            inbuf: Vec::new(),
            out: Vec::new(),
            sent: 0,
        },
        format: PixelFormat::XRGB8888,
        encodings: Encodings::default(),
        encoder: Encoder::default(),
        size: (0, 0),
        request: None,
        scratch: Vec::new(),
        pixels: Vec::new(),
    };
    let result = session.run(skip_auth);
    // Whatever is queued (a failure reason) goes out if the socket takes
    // it now; a client that is not reading does not get to delay this.
    let _ = session.conn.write();
    match result {
        Err(ClientError::Closed) | Err(ClientError::Refused("server shut down")) => {
            tracing::info!("vnc: client {} disconnected", shared.info)
        }
        Err(e) => tracing::warn!(
            "vnc: client {} disconnected: {}",
            shared.info,
            error_chain(&e)
        ),
        Ok(()) => {}
    }
    let _ = rustix::net::shutdown(&shared.fd, Shutdown::Both);
    server.remove(shared.id);
    let client = shared.info.clone();
    server.emit(|server| Event::Disconnected { server, client });
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[derive(Debug, Default)]
struct Encodings {
    copy_rect: bool,
    desktop_size: bool,
    /// RAW, ZLIB or ZRLE: the first of those the client listed.
    preferred: i32,
}

#[derive(Clone, Copy, Debug)]
struct Request {
    incremental: bool,
    area: Rect,
}

struct Session<'a> {
    server: &'a Inner,
    conn: Conn<'a>,
    format: PixelFormat,
    encodings: Encodings,
    encoder: Encoder,
    /// The size this client knows.
    size: (u16, u16),
    request: Option<Request>,
    scratch: Vec<u8>,
    pixels: Vec<u8>,
}

impl Session<'_> {
    fn run(&mut self, skip_auth: bool) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.server.options.handshake_limit;
        self.handshake(skip_auth, deadline)?;
        let client = self.conn.shared.info.clone();
        self.server
            .emit(|server| Event::Initialized { server, client });
        loop {
            while let Some((msg, used)) = proto::parse(&self.conn.inbuf)? {
                self.conn.inbuf.drain(..used);
                self.handle(msg);
            }
            self.update()?;
            self.conn.pump(None)?;
        }
    }

    fn u32(&mut self, v: u32) {
        self.conn.out.extend_from_slice(&v.to_be_bytes());
    }

    /// A security failure: 3.8 clients get QEMU's reason, byte for byte
    /// (its C string with the NUL); the log says `why`.
    fn fail(&mut self, version: Version, why: &'static str, deadline: Instant) -> ClientError {
        const REASON: &[u8] = b"Authentication failed\0";
        self.u32(1);
        if version == Version::V3_8 {
            self.u32(REASON.len() as u32);
            self.conn.out.extend_from_slice(REASON);
        }
        let _ = self.conn.flush(deadline);
        ClientError::Refused(why)
    }

    fn handshake(&mut self, skip_auth: bool, deadline: Instant) -> Result<(), ClientError> {
        self.conn.out.extend_from_slice(proto::SERVER_VERSION);
        let line = self.conn.read_exact::<12>(deadline)?;
        let version = match proto::parse_version(&line) {
            Ok(v) => v,
            Err(e) => {
                // As QEMU: "invalid" (0) where 3.3 expects the type.
                self.u32(0);
                let _ = self.conn.flush(deadline);
                return Err(e.into());
            }
        };
        let kind = if skip_auth || !self.server.options.password_auth {
            security::NONE
        } else {
            security::VNC
        };
        if version == Version::V3_3 {
            self.u32(u32::from(kind));
        } else {
            self.conn.out.extend_from_slice(&[1, kind]);
            let [chosen] = self.conn.read_exact::<1>(deadline)?;
            if chosen != kind {
                return Err(self.fail(version, "unsupported security type", deadline));
            }
        }
        if kind == security::VNC {
            let challenge = auth::challenge()?;
            self.conn.out.extend_from_slice(&challenge);
            let answer = self.conn.read_exact::<16>(deadline)?;
            let ok = {
                let a = lock(&self.server.auth);
                let live = a.expires.is_none_or(|t| SystemTime::now() < t);
                let pw = a
                    .password
                    .as_deref()
                    .map(|p| &p[..p.len().min(auth::MAX_PASSWORD)]);
                live && pw.is_some_and(|p| auth::verify(p, &challenge, &answer))
            };
            if !ok {
                return Err(self.fail(version, "authentication failed", deadline));
            }
            self.u32(0);
        } else if version == Version::V3_8 {
            self.u32(0);
        }
        let [shared_flag] = self.conn.read_exact::<1>(deadline)?;
        self.share(shared_flag != 0)?;
        let mode = self.server.fb.mode();
        self.size = (mode.width, mode.height);
        self.conn.out.extend_from_slice(&mode.width.to_be_bytes());
        self.conn.out.extend_from_slice(&mode.height.to_be_bytes());
        self.conn
            .out
            .extend_from_slice(&PixelFormat::XRGB8888.to_bytes());
        let name = self.server.options.name.as_bytes();
        self.u32(name.len() as u32);
        self.conn.out.extend_from_slice(name);
        self.conn.flush(deadline)
    }

    /// Applies the share policy to this client's shared flag (as QEMU's
    /// protocol_client_init).
    fn share(&mut self, shared: bool) -> Result<(), ClientError> {
        let me = self.conn.shared;
        let clients = lock(&self.server.clients).clone();
        let others = clients.iter().filter(|c| c.id != me.id);
        let mode = match self.server.options.share {
            SharePolicy::Ignore => MODE_SHARED,
            SharePolicy::ForceShared if !shared => {
                return Err(ClientError::Refused(
                    "exclusive access refused (share=force-shared)",
                ))
            }
            SharePolicy::ForceShared => MODE_SHARED,
            SharePolicy::AllowExclusive if !shared => {
                for c in others {
                    if c.share.load(Ordering::Acquire) != MODE_CONNECTING {
                        c.disconnect("another client took exclusive access");
                    }
                }
                MODE_EXCLUSIVE
            }
            SharePolicy::AllowExclusive => {
                if others
                    .into_iter()
                    .any(|c| c.share.load(Ordering::Acquire) == MODE_EXCLUSIVE)
                {
                    return Err(ClientError::Refused("an exclusive client is connected"));
                }
                MODE_SHARED
            }
        };
        me.share.store(mode, Ordering::Release);
        Ok(())
    }

    fn handle(&mut self, msg: ClientMessage) {
        match msg {
            ClientMessage::SetPixelFormat(f) => {
                self.format = f;
                if !f.true_colour {
                    self.colour_map();
                }
            }
            ClientMessage::SetEncodings(list) => {
                let mut e = Encodings {
                    preferred: encoding::RAW,
                    ..Encodings::default()
                };
                let mut chosen = false;
                for enc in list {
                    match enc {
                        encoding::RAW | encoding::ZLIB | encoding::ZRLE if !chosen => {
                            e.preferred = enc;
                            chosen = true;
                        }
                        encoding::COPY_RECT => e.copy_rect = true,
                        encoding::DESKTOP_SIZE => e.desktop_size = true,
                        encoding::COMPRESS_LEVEL_0..=encoding::COMPRESS_LEVEL_9 => self
                            .encoder
                            .set_level((enc - encoding::COMPRESS_LEVEL_0) as u32),
                        _ => {}
                    }
                }
                self.encodings = e;
            }
            ClientMessage::UpdateRequest { incremental, rect } => {
                self.request = Some(match self.request {
                    None => Request {
                        incremental,
                        area: rect,
                    },
                    Some(r) => Request {
                        incremental: r.incremental && incremental,
                        area: r.area.union(&rect),
                    },
                });
            }
            ClientMessage::Key(key) => self.server.input.key(key),
            ClientMessage::Pointer { buttons, x, y } => {
                let mode = self.server.fb.mode();
                self.server.input.pointer(PointerEvent {
                    x: x.min(mode.width.saturating_sub(1)),
                    y: y.min(mode.height.saturating_sub(1)),
                    buttons,
                    width: mode.width,
                    height: mode.height,
                });
            }
            ClientMessage::CutText(text) => self.server.input.cut_text(&text),
        }
    }

    /// SetColourMapEntries with the fixed 3-3-2 palette.
    fn colour_map(&mut self) {
        let out = &mut self.conn.out;
        out.extend_from_slice(&[1, 0, 0, 0, 1, 0]);
        for i in 0..256u32 {
            for (v, max) in [(i & 7, 7), ((i >> 3) & 7, 7), ((i >> 6) & 3, 3)] {
                out.extend_from_slice(&((v * 0xffff / max) as u16).to_be_bytes());
            }
        }
    }

    /// Answers the pending request if there is something to send.
    fn update(&mut self) -> Result<(), ClientError> {
        let Some(req) = self.request else {
            return Ok(());
        };
        let mode = self.server.fb.mode();
        if self.encodings.desktop_size && (mode.width, mode.height) != self.size {
            self.size = (mode.width, mode.height);
            proto::update_header(&mut self.conn.out, 1);
            proto::rect_header(
                &mut self.conn.out,
                Rect::screen(mode.width, mode.height),
                encoding::DESKTOP_SIZE,
            );
            lock(&self.conn.shared.pending).add(&Damage::All);
            self.request = None;
            return Ok(());
        }
        let (w, h) = (self.size.0.min(mode.width), self.size.1.min(mode.height));
        let area = req.area.clip(w, h);
        let screen = Rect::screen(w, h);
        // A slow client's incremental updates wait for its queue to drain.
        if req.incremental && self.conn.queued() > 0 {
            return Ok(());
        }
        let (copies, rects) = {
            let mut p = lock(&self.conn.shared.pending);
            if req.incremental && p.is_empty() {
                return Ok(());
            }
            match area {
                Some(a) if !req.incremental && a == screen => {
                    *p = Pending::default();
                    (Vec::new(), vec![a])
                }
                Some(a) if !req.incremental => (Vec::new(), vec![a]),
                Some(a) => self.take(&mut p, a, screen),
                None => (Vec::new(), Vec::new()),
            }
        };
        if req.incremental && copies.is_empty() && rects.is_empty() {
            return Ok(());
        }
        self.request = None;
        let count = copies.len() + rects.len();
        proto::update_header(&mut self.conn.out, count as u16);
        for (sx, sy, dst) in copies {
            proto::rect_header(&mut self.conn.out, dst, encoding::COPY_RECT);
            self.conn.out.extend_from_slice(&sx.to_be_bytes());
            self.conn.out.extend_from_slice(&sy.to_be_bytes());
        }
        for r in rects {
            self.rect(&mode, r);
        }
        let limit = 2 * usize::from(w) * usize::from(h) * 4 + (1 << 20);
        if self.conn.queued() > limit {
            return Err(ClientError::Overflow(limit));
        }
        Ok(())
    }

    /// Takes the pending damage inside `area` (copies the client can
    /// apply, then rectangles to send).
    fn take(
        &self,
        p: &mut Pending,
        area: Rect,
        screen: Rect,
    ) -> (Vec<(u16, u16, Rect)>, Vec<Rect>) {
        if p.all {
            p.all = false;
            if area == screen {
                return (Vec::new(), vec![area]);
            }
            p.dirty = vec![screen];
        }
        let mut copies = Vec::new();
        for (sx, sy, dst) in std::mem::take(&mut p.copies) {
            let src = Rect::new(sx, sy, dst.w, dst.h);
            if self.encodings.copy_rect && area.contains(&dst) && screen.contains(&src) {
                copies.push((sx, sy, dst));
            } else {
                p.mark(dst);
            }
        }
        let mut rects = Vec::new();
        p.dirty.retain(|d| {
            if let Some(i) = d.intersect(&area) {
                rects.push(i);
            }
            !area.contains(d)
        });
        (copies, rects)
    }

    /// Reads, converts and encodes one rectangle.
    fn rect(&mut self, mode: &Mode, r: Rect) {
        let stride = mode.stride();
        let src_bpp = mode.format.bytes_per_pixel();
        self.scratch.clear();
        self.scratch.resize(stride * usize::from(r.h), 0);
        self.server.fb.read_rows(r.y, &mut self.scratch);
        let conv = Converter::new(mode.format, self.format);
        self.pixels.clear();
        let (x0, x1) = (
            usize::from(r.x) * src_bpp,
            (usize::from(r.x) + usize::from(r.w)) * src_bpp,
        );
        for row in self.scratch.chunks_exact(stride) {
            conv.convert(&row[x0..x1], &mut self.pixels);
        }
        let out = &mut self.conn.out;
        match self.encodings.preferred {
            encoding::ZLIB => self.encoder.zlib(out, r, &self.pixels),
            encoding::ZRLE => {
                let bpp = self.format.bytes_per_pixel();
                self.encoder
                    .zrle(out, r, &self.pixels, bpp, cpixel_range(&self.format))
            }
            _ => Encoder::raw(out, r, &self.pixels),
        }
    }
}
