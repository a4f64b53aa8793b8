//! A second, minimal connection that sends many calls before reading
//! their replies, for `list`'s one DOMAIN_GET_STATE per domain: over 1,000
//! domains, waiting for each reply in turn costs far more than the work.
//!
//! The shared client makes one call at a time by design (it is what
//! console and event loops need), so the batch gets its own socket with
//! its own framing: AUTH_LIST, CONNECT_OPEN, the batch, CONNECT_CLOSE. It
//! does not ask for keepalive, so the daemon never PINGs it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rvirt_remote::calls::ConnectOpenArgs;
use rvirt_remote::consts::REMOTE_AUTH_NONE;
use rvirt_remote::keepalive::KeepaliveProc;
use rvirt_remote::xdr::{from_bytes, to_bytes};
use rvirt_remote::{
    procs, ClientError, FrameDecoder, Header, Message, MessageStatus, MessageType, RemoteError,
    RemoteProcedure,
};

/// Calls in flight at once: bounded so that neither side's socket buffer
/// fills while the other is still writing.
const WINDOW: usize = 256;

/// A connection for batches of calls.
pub struct Pipeline {
    sock: UnixStream,
    frames: FrameDecoder,
    serial: u32,
}

impl Pipeline {
    /// Connects and opens `name` (no keepalive, no close callback).
    pub fn open(path: &Path, name: &str) -> Result<Self, ClientError> {
        let sock = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut p = Pipeline {
            sock,
            frames: FrameDecoder::new(),
            serial: 0,
        };
        let auth = p.call::<procs::AuthList>(&())?;
        if !auth.types.is_empty() && !auth.types.contains(&REMOTE_AUTH_NONE) {
            return Err(ClientError::Auth);
        }
        p.call::<procs::ConnectOpen>(&ConnectOpenArgs {
            name: Some(name.to_string()),
            flags: 0,
        })?;
        Ok(p)
    }

    /// One call.
    pub fn call<P: RemoteProcedure>(&mut self, args: &P::Args) -> Result<P::Ret, ClientError> {
        let mut r = self.call_many::<P>(std::slice::from_ref(args))?;
        match r.pop() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.into()),
            None => Err(ClientError::Protocol("no reply".into())),
        }
    }

    /// Many calls of one procedure; one result per argument, in order. An
    /// error reply fails only its own call; a broken connection fails all.
    pub fn call_many<P: RemoteProcedure>(
        &mut self,
        args: &[P::Args],
    ) -> Result<Vec<Result<P::Ret, RemoteError>>, ClientError> {
        let mut results = Vec::with_capacity(args.len());
        for window in args.chunks(WINDOW) {
            let first = self.serial;
            let mut bytes = Vec::new();
            for a in window {
                let m = Message {
                    header: Header::remote(
                        P::PROC.number(),
                        MessageType::Call,
                        self.serial,
                        MessageStatus::Ok,
                    ),
                    payload: to_bytes(a),
                };
                bytes.extend_from_slice(&m.to_bytes()?);
                self.serial = self.serial.wrapping_add(1);
            }
            self.sock.write_all(&bytes)?;
            let mut got: Vec<Option<Result<P::Ret, RemoteError>>> =
                (0..window.len()).map(|_| None).collect();
            let mut left = window.len();
            while left > 0 {
                let m = self.recv()?;
                let h = m.header;
                if KeepaliveProc::of(&m) == Some(KeepaliveProc::Ping) {
                    self.sock
                        .write_all(&KeepaliveProc::Pong.message().to_bytes()?)?;
                    continue;
                }
                if !h.is_remote() || h.type_ != MessageType::Reply {
                    continue;
                }
                let idx = h.serial.wrapping_sub(first) as usize;
                let Some(slot) = got.get_mut(idx).filter(|s| s.is_none()) else {
                    continue;
                };
                let decode_err = |source| ClientError::Decode {
                    proc_: P::PROC,
                    source,
                };
                *slot = Some(match h.status {
                    MessageStatus::Ok => Ok(from_bytes(&m.payload).map_err(decode_err)?),
                    _ => Err(m.body::<RemoteError>().map_err(decode_err)?),
                });
                left -= 1;
            }
            results.extend(got.into_iter().flatten());
        }
        Ok(results)
    }

    fn recv(&mut self) -> Result<Message, ClientError> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(m) = self.frames.next_message()? {
                return Ok(m);
            }
            match self.sock.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.frames.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// CONNECT_CLOSE; nothing depends on its outcome.
    pub fn close(mut self) {
        let _ = self.call::<procs::ConnectClose>(&());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_remote::calls::{DomainFlagsArgs, DomainGetStateRet};
    use rvirt_remote::{server, Args, NonnullDomain, Procedure};

    /// A fake daemon: answers AUTH_LIST, OPEN and CLOSE, and GET_STATE
    /// with the domain's id as the state, or an error for negative ids.
    /// It reads everything before answering, so replies come in bursts.
    fn fake_daemon(sock: UnixStream) {
        let mut sock = sock;
        let mut frames = FrameDecoder::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match sock.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            frames.push(&buf[..n]);
            let mut out = Vec::new();
            while let Ok(Some(m)) = frames.next_message() {
                let reply = match server::decode_incoming(&m) {
                    Ok(server::Incoming::Call { serial, args }) => match args {
                        Args::AuthList(()) => server::reply(
                            Procedure::AuthList,
                            serial,
                            &rvirt_remote::calls::AuthListRet { types: vec![0] },
                        ),
                        Args::DomainGetState(a) if a.dom.id >= 0 => server::reply(
                            Procedure::DomainGetState,
                            serial,
                            &DomainGetStateRet {
                                state: a.dom.id,
                                reason: 0,
                            },
                        ),
                        Args::DomainGetState(a) => server::error_reply(
                            &m.header,
                            &RemoteError::no_domain_name(&a.dom.name),
                        ),
                        other => server::reply(other.procedure(), serial, &()),
                    },
                    _ => continue,
                };
                out.extend(reply.to_bytes().unwrap());
            }
            if sock.write_all(&out).is_err() {
                return;
            }
        }
    }

    #[test]
    fn batches_keep_order_and_per_call_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        // A side that waits for the other past this gives up, so that a
        // stuck exchange fails the test instead of hanging it.
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
        }
        let t = std::thread::spawn(move || fake_daemon(b));
        let mut p = Pipeline {
            sock: a,
            frames: FrameDecoder::new(),
            serial: 0,
        };
        p.call::<procs::AuthList>(&()).unwrap();
        let args: Vec<DomainFlagsArgs> = (0..700)
            .map(|i| DomainFlagsArgs {
                dom: NonnullDomain {
                    name: format!("d{i}"),
                    uuid: Default::default(),
                    id: if i == 500 { -1 } else { i },
                },
                flags: 0,
            })
            .collect();
        let r = p.call_many::<procs::DomainGetState>(&args).unwrap();
        assert_eq!(r.len(), 700);
        assert_eq!(r[3].as_ref().unwrap().state, 3);
        assert_eq!(r[699].as_ref().unwrap().state, 699);
        assert!(r[500].as_ref().is_err());
        p.close();
        t.join().unwrap();
    }
}
