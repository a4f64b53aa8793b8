//! QEMU's `-netdev stream`: Ethernet frames over a connected stream
//! socket, each preceded by its length as a 4-byte big-endian number, with
//! no vnet header (so no checksum or segmentation offload either way).
//! passt speaks it on its `--socket` or `--fd`.
//!
//! [`StreamNetdev`] is the client side (`server=off`): it connects to a
//! UNIX socket path or adopts a connected descriptor, and when the peer
//! goes away it can connect again every `reconnect` seconds, woken by a
//! timerfd the caller polls. Frames are reassembled by [`FrameReader`], a
//! state machine that never reads past the next frame's length, so a
//! level-triggered poll of the socket never misses a frame left in a
//! buffer. On the way out a full socket pushes back: a frame it refuses is
//! not taken (`WouldBlock`), the caller keeps it and waits for
//! [`StreamNetdev::writable_fd`]; the rest of a frame the kernel took in
//! part is kept here and written first, so the stream never tears.
//!
//! A closed connection's descriptors are kept until the next connection
//! is made, so a new descriptor never reuses the number of one a poller
//! still has registered (the timerfd is made up front for the same reason).

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// The largest frame accepted from the peer: a 64 KiB IP packet and an
/// Ethernet header with VLAN tags (passt sends at most 65520 + 14).
pub const MAX_FRAME: usize = 65535 + 22;

/// Why a stream back-end could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot connect to {}", .0.display())]
    Connect(PathBuf, #[source] io::Error),
    #[error("fd {0} is not a connected stream socket")]
    NotStream(RawFd, #[source] io::Error),
    #[error("cannot create the reconnection timer")]
    Timer(#[source] io::Error),
    #[error("cannot make the socket non-blocking")]
    NonBlocking(#[source] io::Error),
}

/// Reassembles length-prefixed frames from a byte stream, one read (or
/// two) per frame: the body and the next frame's length are read together,
/// and nothing past that, so what stays unread stays in the socket.
#[derive(Debug)]
pub struct FrameReader {
    len: [u8; 4],
    /// Bytes of `len` read.
    len_have: usize,
    body: Vec<u8>,
    /// Bytes of the body read (valid once `len_have` is 4).
    body_have: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            len: [0; 4],
            len_have: 0,
            body: vec![0; MAX_FRAME],
            body_have: 0,
        }
    }
}

impl FrameReader {
    /// Reads from `src` until one whole frame is in, and copies it to the
    /// start of `out`. `WouldBlock` when `src` has no more for now (the
    /// part read is kept), `UnexpectedEof` when the peer closed, and
    /// `InvalidData` for a length of 0 or above `MAX_FRAME` or `out`'s size
    /// (the stream cannot be resynchronised after that).
    pub fn read_frame(&mut self, src: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.len_have < 4 {
                let n = read_some(src, &mut [IoSliceMut::new(&mut self.len[self.len_have..])])?;
                self.len_have += n;
                continue;
            }
            let want = u32::from_be_bytes(self.len) as usize;
            if want == 0 || want > MAX_FRAME || want > out.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame length {want} out of range"),
                ));
            }
            if self.body_have == want {
                out[..want].copy_from_slice(&self.body[..want]);
                self.len_have = 0;
                self.body_have = 0;
                return Ok(want);
            }
            // The rest of the body, and the next length if it is there.
            let mut next = [0u8; 4];
            let n = read_some(
                src,
                &mut [
                    IoSliceMut::new(&mut self.body[self.body_have..want]),
                    IoSliceMut::new(&mut next),
                ],
            )?;
            let body = n.min(want - self.body_have);
            self.body_have += body;
            if self.body_have == want {
                out[..want].copy_from_slice(&self.body[..want]);
                let extra = n - body;
                self.len[..extra].copy_from_slice(&next[..extra]);
                self.len_have = extra;
                self.body_have = 0;
                return Ok(want);
            }
        }
    }

    /// Forgets a partly read frame (a new connection starts afresh).
    pub fn reset(&mut self) {
        self.len_have = 0;
        self.body_have = 0;
    }
}

/// One vectored read: its length, `UnexpectedEof` for end of file; EINTR
/// is retried.
fn read_some(src: &mut impl Read, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    loop {
        match src.read_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `frame` with its length in front, after what `pending` holds of
/// an earlier frame. `WouldBlock` when the socket cannot take the start of
/// it (or `pending` is not out yet): the frame is not taken. When the
/// kernel takes part of it, the rest goes to `pending`, and the frame is
/// taken.
pub fn write_frame<S: Write>(dst: &mut S, frame: &[u8], pending: &mut Vec<u8>) -> io::Result<()> {
    if !flush_pending(dst, pending)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let len = u32::try_from(frame.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
        .to_be_bytes();
    let total = 4 + frame.len();
    let n = loop {
        match dst.write_vectored(&[IoSlice::new(&len), IoSlice::new(frame)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    if n < total {
        if n < 4 {
            pending.extend_from_slice(&len[n..]);
            pending.extend_from_slice(frame);
        } else {
            pending.extend_from_slice(&frame[n - 4..]);
        }
    }
    Ok(())
}

/// Writes what `pending` holds; true once it is all out.
pub fn flush_pending<S: Write>(dst: &mut S, pending: &mut Vec<u8>) -> io::Result<bool> {
    while !pending.is_empty() {
        match dst.write(pending) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Where the stream goes.
#[derive(Debug)]
enum Peer {
    /// `addr.type=unix,addr.path=…`: can be connected again.
    Path(PathBuf),
    /// `addr.type=fd`: a descriptor the parent connected; once gone, gone.
    Fd,
}

/// The client side of a `-netdev stream`: frames in and out of one
/// connection, and the reconnection timer while there is none.
#[derive(Debug)]
pub struct StreamNetdev {
    peer: Peer,
    reconnect: Option<Duration>,
    conn: Option<Connection>,
    /// The last connection's descriptors, closed once the next is made.
    retired: Option<Connection>,
    reader: FrameReader,
    /// The rest of a frame the kernel took in part.
    pending: Vec<u8>,
    /// Armed while disconnected with `reconnect` set.
    timer: Option<OwnedFd>,
}

/// A connection, and a second descriptor of it to poll for writability
/// (the first is polled for frames; one descriptor cannot be in an epoll
/// set twice).
#[derive(Debug)]
struct Connection {
    sock: UnixStream,
    out: OwnedFd,
}

impl Connection {
    fn new(sock: UnixStream) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        let out = sock.as_fd().try_clone_to_owned()?;
        Ok(Connection { sock, out })
    }
}

impl StreamNetdev {
    /// Connects to the UNIX socket at `path`. Without `reconnect` a failure
    /// is an error; with it, the back-end starts disconnected and tries
    /// again every `reconnect`.
    pub fn connect(path: &Path, reconnect: Option<Duration>) -> Result<Self, StreamError> {
        let reconnect = reconnect.filter(|d| !d.is_zero());
        // Made before any connection: were it made after a connection
        // closed it could take that socket's descriptor number, and a
        // poller still holding the number would not see the change.
        let timer = match reconnect {
            Some(_) => Some(
                timerfd_create(
                    TimerfdClockId::Monotonic,
                    TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
                )
                .map_err(|e| StreamError::Timer(e.into()))?,
            ),
            None => None,
        };
        let mut s = StreamNetdev {
            peer: Peer::Path(path.to_path_buf()),
            reconnect,
            conn: None,
            retired: None,
            reader: FrameReader::default(),
            pending: Vec::new(),
            timer,
        };
        match dial(path) {
            Ok(c) => s.conn = Some(c),
            Err(e) if s.reconnect.is_none() => return Err(StreamError::Connect(path.into(), e)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "stream netdev: not connected yet");
                s.arm_timer().map_err(StreamError::Timer)?;
            }
        }
        Ok(s)
    }

    /// Adopts a connected stream socket (`addr.type=fd`, or one end of a
    /// socketpair whose other end passt has).
    pub fn from_fd(fd: OwnedFd) -> Result<Self, StreamError> {
        let raw = fd.as_raw_fd();
        match rustix::net::sockopt::socket_type(&fd) {
            Ok(rustix::net::SocketType::STREAM) => {}
            Ok(_) => {
                return Err(StreamError::NotStream(
                    raw,
                    io::Error::from_raw_os_error(libc::EPROTOTYPE),
                ))
            }
            Err(e) => return Err(StreamError::NotStream(raw, e.into())),
        }
        let conn = Connection::new(UnixStream::from(fd)).map_err(StreamError::NonBlocking)?;
        Ok(StreamNetdev {
            peer: Peer::Fd,
            reconnect: None,
            conn: Some(conn),
            retired: None,
            reader: FrameReader::default(),
            pending: Vec::new(),
            timer: None,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection's descriptor, to poll for frames.
    pub fn fd(&self) -> Option<RawFd> {
        self.conn.as_ref().map(|c| c.sock.as_raw_fd())
    }

    /// A descriptor of the connection to poll for writability, while a
    /// send was refused or a frame's rest waits.
    pub fn writable_fd(&self) -> Option<RawFd> {
        self.conn.as_ref().map(|c| c.out.as_raw_fd())
    }

    /// Part of a frame waits to be written ([`StreamNetdev::flush`]).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the rest of a frame taken in part; true once it is out.
    pub fn flush(&mut self) -> io::Result<bool> {
        let conn = self
            .conn
            .as_mut()
            .ok_or(io::Error::from(io::ErrorKind::NotConnected))?;
        flush_pending(&mut conn.sock, &mut self.pending)
    }

    /// Receives one frame into `out`; `NotConnected` without a connection.
    pub fn recv(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let conn = self
            .conn
            .as_mut()
            .ok_or(io::Error::from(io::ErrorKind::NotConnected))?;
        self.reader.read_frame(&mut conn.sock, out)
    }

    /// Sends one frame (see [`write_frame`]).
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let conn = self
            .conn
            .as_mut()
            .ok_or(io::Error::from(io::ErrorKind::NotConnected))?;
        write_frame(&mut conn.sock, frame, &mut self.pending)
    }

    /// Drops the connection (the peer went away or broke the framing) and,
    /// with `reconnect`, arms the timer for the next attempt.
    pub fn disconnect(&mut self) {
        let Some(old) = self.conn.take() else {
            return;
        };
        let _ = old.sock.shutdown(std::net::Shutdown::Both);
        self.retired = Some(old);
        self.reader.reset();
        self.pending.clear();
        if self.reconnect.is_some() {
            if let Err(e) = self.arm_timer() {
                tracing::warn!(error = %e, "stream netdev: no reconnection timer; staying down");
            }
        }
    }

    /// While disconnected with `reconnect`: the timerfd that becomes
    /// readable when it is time to try again.
    pub fn reconnect_fd(&self) -> Option<RawFd> {
        if self.conn.is_some() {
            return None;
        }
        self.timer.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Called when [`StreamNetdev::reconnect_fd`] is readable: tries to
    /// connect; true once connected, else the timer is armed again.
    pub fn try_reconnect(&mut self) -> io::Result<bool> {
        if self.conn.is_some() {
            return Ok(true);
        }
        if let Some(t) = &self.timer {
            let mut expirations = [0u8; 8];
            // Nonblocking: nothing to read means a spurious wakeup.
            match rustix::io::read(t, &mut expirations) {
                Ok(_) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        let Peer::Path(path) = &self.peer else {
            return Ok(false);
        };
        match dial(path) {
            Ok(c) => {
                self.conn = Some(c);
                self.retired = None;
                self.reader.reset();
                Ok(true)
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "stream netdev: reconnection failed");
                self.arm_timer()?;
                Ok(false)
            }
        }
    }

    fn arm_timer(&mut self) -> io::Result<()> {
        let (Some(every), Some(timer)) = (self.reconnect, &self.timer) else {
            return Ok(());
        };
        let value = Timespec::try_from(every).map_err(|_| io::ErrorKind::InvalidInput)?;
        timerfd_settime(
            timer,
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            },
        )?;
        Ok(())
    }
}

/// Connects to `path`, non-blocking from then on.
fn dial(path: &Path) -> io::Result<Connection> {
    Connection::new(UnixStream::connect(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{poll, PollFd, PollFlags};

    /// Hands out a byte stream in the chunks given, then WouldBlock.
    struct Chunks(Vec<Vec<u8>>);

    impl Read for Chunks {
        /// Fills several buffers from one chunk, as a socket's readv
        /// does from what has arrived.
        fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
            let Some(c) = self.0.first_mut() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let mut n = 0;
            for b in bufs.iter_mut() {
                let k = (c.len() - n).min(b.len());
                b[..k].copy_from_slice(&c[n..n + k]);
                n += k;
            }
            c.drain(..n);
            if c.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }

        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(c) = self.0.first_mut() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            c.drain(..n);
            if c.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(&(f.len() as u32).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let stream = framed(&[b"first frame", b"2", &[7u8; 1500]]);
        for chunk in [1, 2, 3, 5, 7, 4096] {
            let mut src = Chunks(stream.chunks(chunk).map(<[u8]>::to_vec).collect());
            let mut r = FrameReader::default();
            let mut out = vec![0u8; MAX_FRAME];
            let mut got = Vec::new();
            loop {
                match r.read_frame(&mut src, &mut out) {
                    Ok(n) => got.push(out[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if src.0.is_empty() {
                            break;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got.len(), 3, "chunks of {chunk}");
            assert_eq!(got[0], b"first frame");
            assert_eq!(got[1], b"2");
            assert_eq!(got[2], vec![7u8; 1500]);
        }
    }

    #[test]
    fn a_read_never_takes_more_than_the_next_length() {
        // Two frames in one chunk: reading the first leaves the second's
        // body in the source (a socket stays readable for it).
        let stream = framed(&[b"abc", b"defgh"]);
        let mut src = Chunks(vec![stream]);
        let mut r = FrameReader::default();
        let mut out = [0u8; 64];
        assert_eq!(r.read_frame(&mut src, &mut out).unwrap(), 3);
        assert_eq!(src.0[0], b"defgh", "only the next length was taken");
        assert_eq!(r.read_frame(&mut src, &mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"defgh");
    }

    #[test]
    fn bad_lengths_and_eof_are_errors() {
        let mut out = [0u8; 64];
        for len in [0u32, 65, MAX_FRAME as u32 + 1, u32::MAX] {
            let mut src = Chunks(vec![len.to_be_bytes().to_vec(), vec![0; 80]]);
            let e = FrameReader::default()
                .read_frame(&mut src, &mut out)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "length {len}");
        }
        struct Eof;
        impl Read for Eof {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Ok(0)
            }
        }
        let e = FrameReader::default()
            .read_frame(&mut Eof, &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_socket_pair_carries_frames_both_ways() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut ours = StreamNetdev::from_fd(a.into()).unwrap();
        let mut theirs = b;
        ours.send(b"to the peer").unwrap();
        let mut buf = [0u8; 15];
        theirs.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..4], &11u32.to_be_bytes());
        assert_eq!(&buf[4..], b"to the peer");
        theirs.write_all(&framed(&[b"back"])).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(ours.recv(&mut out).unwrap(), 4);
        assert_eq!(&out[..4], b"back");
        assert_eq!(
            ours.recv(&mut out).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(theirs);
        assert_eq!(
            ours.recv(&mut out).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_full_socket_pushes_back_and_never_tears_a_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut ours = StreamNetdev::from_fd(a.into()).unwrap();
        // Nobody reads: frames go in until the socket refuses one; the
        // kernel may have taken the frame before it in part.
        let mut sent = Vec::new();
        for i in 0..1000u32 {
            let frame = vec![i as u8; 60000 - i as usize];
            match ours.send(&frame) {
                Ok(()) => sent.push((frame.len(), i as u8)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(sent.len() < 1000, "the socket never filled");
        assert!(ours.writable_fd().is_some());
        // The reader drains everything while the writer keeps going as
        // the socket lets it: every frame taken arrives whole, in order.
        let reader = std::thread::spawn(move || {
            let mut theirs = b;
            theirs
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut r = FrameReader::default();
            let mut out = vec![0u8; MAX_FRAME];
            let mut got = Vec::new();
            while let Ok(n) = r.read_frame(&mut theirs, &mut out) {
                assert!(
                    out[..n].iter().all(|&x| x == out[0]),
                    "frame {} torn",
                    got.len()
                );
                got.push((n, out[0]));
            }
            got
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for i in 1000..1100u32 {
            let frame = vec![i as u8; 1000 + i as usize];
            loop {
                match ours.send(&frame) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < deadline, "the reader stalled");
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            sent.push((frame.len(), i as u8));
        }
        while !ours.flush().unwrap() {
            assert!(std::time::Instant::now() < deadline, "the reader stalled");
            std::thread::yield_now();
        }
        drop(ours);
        assert_eq!(join(reader), sent);
    }

    /// Joins a test thread (its panic is the test's).
    fn join<T>(t: std::thread::JoinHandle<T>) -> T {
        t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    #[test]
    fn a_missing_socket_is_an_error_unless_reconnecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens");
        let e = StreamNetdev::connect(&path, None).unwrap_err();
        assert!(matches!(e, StreamError::Connect(..)), "{e}");
        let mut s = StreamNetdev::connect(&path, Some(Duration::from_millis(10))).unwrap();
        assert!(!s.is_connected());
        let timer = s.reconnect_fd().expect("timer armed");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // SAFETY: the timer descriptor stays open while `s` lives.
        let timer = unsafe { std::os::fd::BorrowedFd::borrow_raw(timer) };
        let mut fds = [PollFd::new(&timer, PollFlags::IN)];
        poll(
            &mut fds,
            Some(&Timespec {
                tv_sec: 10,
                tv_nsec: 0,
            }),
        )
        .unwrap();
        assert!(s.try_reconnect().unwrap());
        assert!(s.is_connected() && s.reconnect_fd().is_none());
        let (mut peer, _) = listener.accept().unwrap();
        s.send(b"hi").unwrap();
        let mut buf = [0u8; 6];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[4..], b"hi");
        // The peer goes away: disconnected, the timer armed again; the old
        // descriptors stay open until the next connection, so it cannot
        // get their numbers.
        drop(peer);
        let mut out = [0u8; 16];
        let e = s.recv(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let (old_in, old_out) = (s.fd().unwrap(), s.writable_fd().unwrap());
        s.disconnect();
        assert!(!s.is_connected() && s.reconnect_fd().is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(s.try_reconnect().unwrap());
        assert!(![old_in, old_out].contains(&s.fd().unwrap()));
        assert!(![old_in, old_out].contains(&s.writable_fd().unwrap()));
    }
}
