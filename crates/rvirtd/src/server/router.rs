//! The one place a client's message is routed: keepalive, stream data,
//! the read-only ACL (the table's column), connection-level calls (this
//! module's [`ConnectionDriver`]), and every other CALL to the driver of
//! its group through `rvirt_remote::procedures::dispatch`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvirt_remote::calls::{
    AuthListRet, ConnectIsSecureRet, ConnectOpenArgs, ConnectSupportsFeatureArgs,
    ConnectSupportsFeatureRet,
};
use rvirt_remote::consts::{feature, REMOTE_AUTH_NONE};
use rvirt_remote::error::{code, from};
use rvirt_remote::handshake::{check_open_name, ServerFeatures};
use rvirt_remote::keepalive::{KeepaliveProc, KeepaliveTracker};
use rvirt_remote::procedures::{dispatch, ConnectionCalls, Drivers};
use rvirt_remote::server::{decode_incoming, error_reply, reply_ret, Incoming, Refused};
use rvirt_remote::uri::Mode;
use rvirt_remote::{Message, RemoteError};

use super::events::Subscriber;
use super::streams::Streams;

/// `VIR_CONNECT_RO`.
pub const VIR_CONNECT_RO: u32 = 1;

/// One client's state, as the router and the drivers see it.
pub struct Client {
    pub sub: Arc<Subscriber>,
    pub streams: Streams,
    /// CONNECT_OPEN had VIR_CONNECT_RO.
    pub read_only: Cell<bool>,
    /// Started when the client asks whether keepalive is supported, as
    /// libvirtd starts it.
    pub keepalive: RefCell<Option<KeepaliveTracker>>,
    /// Domains it started with VIR_DOMAIN_START_AUTODESTROY (each with the
    /// id of that run): destroyed when the connection goes away.
    pub autodestroy: RefCell<Vec<rvirt_remote::NonnullDomain>>,
    /// The descriptors the CALL_WITH_FDS being routed carried, in order
    /// (the reader fills it before routing and empties it after).
    pub passed_fds: RefCell<Vec<std::os::fd::OwnedFd>>,
}

impl Client {
    pub fn new(sub: Arc<Subscriber>) -> Self {
        Client {
            sub,
            streams: Streams::default(),
            read_only: Cell::new(false),
            keepalive: RefCell::new(None),
            autodestroy: RefCell::new(Vec::new()),
            passed_fds: RefCell::new(Vec::new()),
        }
    }
}

/// One CALL as a driver sees it: who made it, and what to do once its
/// reply is sent.
pub struct Call<'a> {
    pub client: &'a Client,
    pub serial: u32,
    after_reply: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
    /// Descriptors the reply carries (REPLY_WITH_FDS).
    reply_fds: RefCell<Vec<std::os::fd::OwnedFd>>,
}

impl<'a> Call<'a> {
    pub fn new(client: &'a Client, serial: u32) -> Self {
        Call {
            client,
            serial,
            after_reply: RefCell::new(None),
            reply_fds: RefCell::new(Vec::new()),
        }
    }

    /// Passes `fd` to the client with the reply, as libvirtd passes a
    /// graphics socket: the reply becomes REPLY_WITH_FDS.
    pub fn reply_fd(&self, fd: std::os::fd::OwnedFd) {
        self.reply_fds.borrow_mut().push(fd);
    }

    /// The descriptor at `slot` of those the call carried, taken (as
    /// libvirt's virNetMessageDupFD, which dups it).
    pub fn passed_fd(&self, slot: usize) -> Option<std::os::fd::OwnedFd> {
        self.client.passed_fds.borrow().get(slot)?.try_clone().ok()
    }

    /// Runs `f` once the reply has been queued (a console's first data
    /// must follow its reply).
    pub fn after_reply(&self, f: impl FnOnce() + 'a) {
        *self.after_reply.borrow_mut() = Some(Box::new(f));
    }
}

/// Routes one message from `client`; false when the client must go.
pub fn route<D>(drivers: &D, client: &Client, msg: &Message) -> bool
where
    D: for<'a> Drivers<Call<'a>>,
{
    let answer = match decode_incoming(msg) {
        Ok(Incoming::Call { serial, args }) => {
            let p = args.procedure();
            if client.read_only.get() && p.changes_state() {
                Some(error_reply(&msg.header, &denied(&p.api_name())))
            } else {
                let cx = Call::new(client, serial);
                let result = dispatch(drivers, &cx, args);
                let fds = cx.reply_fds.take();
                let sent = match result {
                    Ok(ret) if !fds.is_empty() => {
                        let mut m = reply_ret(serial, &ret);
                        // The count precedes the payload; the descriptors
                        // follow the message (virnetmessage.c).
                        m.header.type_ = rvirt_remote::MessageType::ReplyWithFds;
                        let mut payload = (fds.len() as u32).to_be_bytes().to_vec();
                        payload.extend_from_slice(&m.payload);
                        m.payload = payload;
                        client.sub.outbox.send_with_fds(&m, fds)
                    }
                    Ok(ret) => client.sub.outbox.send(&reply_ret(serial, &ret)),
                    Err(e) => {
                        tracing::debug!(procedure = p.name(), error = %e, "call failed");
                        client.sub.outbox.send(&error_reply(&msg.header, &e))
                    }
                };
                if !sent {
                    return false;
                }
                if let Some(f) = cx.after_reply.into_inner() {
                    f();
                }
                None
            }
        }
        Ok(Incoming::Keepalive(KeepaliveProc::Ping)) => Some(KeepaliveProc::Pong.message()),
        Ok(Incoming::Keepalive(_)) => None,
        Ok(Incoming::Stream {
            serial,
            status,
            data,
            ..
        }) => {
            client.streams.incoming(serial, status, &data);
            None
        }
        Err(Refused::UnknownProcedure(h)) if h.is_remote() => {
            // Not a dropped connection, not an RPC error: a procedure rvirt
            // does not implement, answered as libvirtd answers an API its
            // driver lacks, by the API's name when libvirt has one.
            let error = match rvirt_remote::names::wire_name(h.proc_) {
                Some(wire) => {
                    let api = rvirt_remote::names::api_name(wire);
                    tracing::info!(procedure = h.proc_, api, "procedure not implemented");
                    RemoteError::no_support(&api)
                }
                None => {
                    tracing::info!(procedure = h.proc_, "unknown procedure");
                    RemoteError::new(
                        code::NO_SUPPORT,
                        from::RPC,
                        Some(&format!("unknown procedure {}", h.proc_)),
                    )
                }
            };
            Some(error_reply(&h, &error))
        }
        Err(refused) => {
            tracing::debug!(error = %refused, "message refused");
            refused.reply()
        }
    };
    match answer {
        Some(m) => client.sub.outbox.send(&m),
        None => true,
    }
}

/// libvirt's refusal of API `api` on a read-only connection.
pub fn denied(api: &str) -> RemoteError {
    RemoteError::new(
        code::OPERATION_DENIED,
        from::NONE,
        Some(&format!("read only access prevents {api}")),
    )
}

/// The connection-level calls every client makes before and around its
/// real work, answered as libvirtd answers them.
#[derive(Debug, Clone)]
pub struct ConnectionDriver {
    /// Which URI path (`/system` or `/session`) CONNECT_OPEN accepts.
    pub mode: Mode,
    /// libvirtd's keepalive_interval and keepalive_count.
    pub keepalive: (Duration, u32),
}

impl<'a> ConnectionCalls<Call<'a>> for ConnectionDriver {
    fn connect_open(&self, cx: &Call<'a>, a: ConnectOpenArgs) -> Result<(), RemoteError> {
        check_open_name(a.name.as_deref(), self.mode).map_err(|e| *e)?;
        cx.client.read_only.set(a.flags & VIR_CONNECT_RO != 0);
        Ok(())
    }

    fn connect_close(&self, _cx: &Call<'a>, _a: ()) -> Result<(), RemoteError> {
        Ok(())
    }

    fn auth_list(&self, _cx: &Call<'a>, _a: ()) -> Result<AuthListRet, RemoteError> {
        Ok(AuthListRet {
            types: vec![REMOTE_AUTH_NONE],
        })
    }

    fn connect_supports_feature(
        &self,
        cx: &Call<'a>,
        a: ConnectSupportsFeatureArgs,
    ) -> Result<ConnectSupportsFeatureRet, RemoteError> {
        if a.feature == feature::PROGRAM_KEEPALIVE {
            let mut k = cx.client.keepalive.borrow_mut();
            if k.is_none() {
                let (interval, count) = self.keepalive;
                *k = Some(KeepaliveTracker::new(interval, count, Instant::now()));
            }
        }
        Ok(ConnectSupportsFeatureRet {
            supported: i32::from(ServerFeatures::default().supports(a.feature)),
        })
    }

    // A local UNIX socket is as secure as libvirt considers anything.
    fn connect_is_secure(&self, _cx: &Call<'a>, _a: ()) -> Result<ConnectIsSecureRet, RemoteError> {
        Ok(ConnectIsSecureRet { secure: 1 })
    }

    fn connect_register_close_callback(&self, _cx: &Call<'a>, _a: ()) -> Result<(), RemoteError> {
        Ok(())
    }

    fn connect_unregister_close_callback(&self, _cx: &Call<'a>, _a: ()) -> Result<(), RemoteError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The router with fake drivers and no sockets: each message goes in,
    //! what the client would receive comes out of its outbox.

    use super::*;
    use rvirt_remote::calls::{DomainArgs, DomainFlagsArgs, StorageVolLookupByPathArgs};
    use rvirt_remote::procedures::{DomainCalls, Procedure, Unserved};
    use rvirt_remote::xdr::Xdr;
    use rvirt_remote::{Args, Header, MessageStatus, MessageType, NonnullDomain};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A domain driver that only knows DOMAIN_CREATE and DOMAIN_RESET and
    /// counts them.
    #[derive(Default)]
    struct FakeDomains {
        calls: AtomicU32,
    }

    impl<'a> DomainCalls<Call<'a>> for FakeDomains {
        fn domain_create(&self, cx: &Call<'a>, _a: DomainArgs) -> Result<(), RemoteError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let sub = cx.client.sub.clone();
            // Something sent after the reply, as a console's data is.
            cx.after_reply(move || {
                sub.outbox
                    .send(&rvirt_remote::server::stream_data(9, 1, b"after"));
            });
            Ok(())
        }

        fn domain_reset(&self, _cx: &Call<'a>, _a: DomainFlagsArgs) -> Result<(), RemoteError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    struct Fake {
        connection: ConnectionDriver,
        domains: FakeDomains,
    }

    impl<'a> Drivers<Call<'a>> for Fake {
        fn connection(&self) -> &dyn ConnectionCalls<Call<'a>> {
            &self.connection
        }
        fn domain(&self) -> &dyn DomainCalls<Call<'a>> {
            &self.domains
        }
        fn storage(&self) -> &dyn rvirt_remote::procedures::StorageCalls<Call<'a>> {
            &Unserved
        }
    }

    struct Rig {
        fake: Fake,
        client: Client,
        peer: std::os::unix::net::UnixStream,
        rx: std::sync::mpsc::Receiver<super::super::outbox::Queued>,
    }

    fn rig() -> Rig {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let (outbox, rx) = super::super::outbox::Outbox::new(ours);
        Rig {
            fake: Fake {
                connection: ConnectionDriver {
                    mode: Mode::System,
                    keepalive: (Duration::from_secs(5), 5),
                },
                domains: FakeDomains::default(),
            },
            client: Client::new(Arc::new(Subscriber::new(Arc::new(outbox)))),
            peer,
            rx,
        }
    }

    impl Rig {
        fn call(&self, args: Args) -> Vec<Message> {
            let p = args.procedure();
            let msg = Message {
                header: Header::remote(p.number(), MessageType::Call, 7, MessageStatus::Ok),
                payload: args.encode(),
            };
            assert!(route(&self.fake, &self.client, &msg));
            self.sent()
        }

        fn sent(&self) -> Vec<Message> {
            let mut out = Vec::new();
            while let Ok(q) = self.rx.try_recv() {
                let mut d = rvirt_remote::FrameDecoder::new();
                d.push(&q.bytes);
                out.push(d.next_message().unwrap().unwrap());
            }
            let _ = &self.peer;
            out
        }
    }

    fn error_of(m: &Message) -> RemoteError {
        assert_eq!(m.header.status, MessageStatus::Error);
        m.body().unwrap()
    }

    fn dom() -> NonnullDomain {
        NonnullDomain {
            name: "a".into(),
            uuid: Default::default(),
            id: -1,
        }
    }

    #[test]
    fn calls_reach_their_driver_and_the_rest_answer_no_support() {
        let r = rig();
        let out = r.call(Args::DomainCreate(DomainArgs { dom: dom() }));
        assert_eq!(out.len(), 2, "the reply, then what ran after it");
        assert_eq!(out[0].header.status, MessageStatus::Ok);
        assert_eq!(out[0].header.serial, 7);
        assert_eq!(out[1].header.type_, MessageType::Stream);
        assert_eq!(r.fake.domains.calls.load(Ordering::SeqCst), 1);

        // A procedure of the table no driver implements.
        let out = r.call(Args::DomainSuspend(DomainArgs { dom: dom() }));
        let e = error_of(&out[0]);
        assert_eq!(e.code, code::NO_SUPPORT);
        assert_eq!(
            e.message.as_deref(),
            Some("this function is not supported by the connection driver: virDomainSuspend")
        );
        // A group with no driver at all.
        let out = r.call(Args::StorageVolLookupByPath(StorageVolLookupByPathArgs {
            path: "/x".into(),
        }));
        assert_eq!(
            error_of(&out[0]).message.as_deref(),
            Some("this function is not supported by the connection driver: virStorageVolLookupByPath")
        );
    }

    #[test]
    fn a_read_only_connection_is_refused_changes_by_the_tables_acl() {
        let r = rig();
        let out = r.call(Args::ConnectOpen(ConnectOpenArgs {
            name: Some("qemu:///system".into()),
            flags: VIR_CONNECT_RO,
        }));
        assert_eq!(out[0].header.status, MessageStatus::Ok);
        assert!(r.client.read_only.get());
        for args in [
            Args::DomainCreate(DomainArgs { dom: dom() }),
            Args::DomainReset(DomainFlagsArgs {
                dom: dom(),
                flags: 0,
            }),
        ] {
            let api = args.procedure().api_name();
            let e = error_of(&r.call(args)[0]);
            assert_eq!(e.code, code::OPERATION_DENIED);
            assert_eq!(
                e.message.unwrap(),
                format!("operation forbidden: read only access prevents {api}")
            );
        }
        assert_eq!(r.fake.domains.calls.load(Ordering::SeqCst), 0);
        // Reads still go through (to NO_SUPPORT here: the fake has none).
        let out = r.call(Args::DomainGetInfo(DomainArgs { dom: dom() }));
        assert_eq!(error_of(&out[0]).code, code::NO_SUPPORT);
        assert!(!Procedure::DomainGetInfo.changes_state());
    }

    #[test]
    fn connection_calls_keepalive_and_garbage() {
        let r = rig();
        let out = r.call(Args::ConnectOpen(ConnectOpenArgs {
            name: Some("qemu:///session".into()),
            flags: 0,
        }));
        assert_eq!(error_of(&out[0]).code, code::INTERNAL_ERROR);
        assert!(r.client.keepalive.borrow().is_none());
        let out = r.call(Args::ConnectSupportsFeature(ConnectSupportsFeatureArgs {
            feature: feature::PROGRAM_KEEPALIVE,
        }));
        assert_eq!(out[0].payload, [0, 0, 0, 1]);
        assert!(r.client.keepalive.borrow().is_some());

        // PING gets a PONG.
        assert!(route(&r.fake, &r.client, &KeepaliveProc::Ping.message()));
        assert_eq!(KeepaliveProc::of(&r.sent()[0]), Some(KeepaliveProc::Pong));
        // An unknown procedure number and undecodable arguments are
        // answered; the connection stays.
        let unknown = Message {
            header: Header::remote(99_999, MessageType::Call, 3, MessageStatus::Ok),
            payload: vec![],
        };
        assert!(route(&r.fake, &r.client, &unknown));
        let e = error_of(&r.sent()[0]);
        assert_eq!(
            (e.code, e.message.as_deref()),
            (
                code::NO_SUPPORT,
                Some("this function is not supported by the connection driver: unknown procedure 99999")
            )
        );
        // One libvirt has and rvirt does not: named by its API.
        let known = Message {
            header: Header::remote(207, MessageType::Call, 5, MessageStatus::Ok),
            payload: vec![],
        };
        assert!(route(&r.fake, &r.client, &known));
        let e = error_of(&r.sent()[0]);
        assert_eq!(
            (e.code, e.message.as_deref()),
            (
                code::NO_SUPPORT,
                Some("this function is not supported by the connection driver: virDomainMigrateSetMaxSpeed")
            )
        );
        let mut bad = Vec::new();
        7u32.encode(&mut bad);
        let garbage = Message {
            header: Header::remote(
                Procedure::DomainCreate.number(),
                MessageType::Call,
                4,
                MessageStatus::Ok,
            ),
            payload: bad,
        };
        assert!(route(&r.fake, &r.client, &garbage));
        assert_eq!(error_of(&r.sent()[0]).code, code::RPC);
        assert_eq!(r.fake.domains.calls.load(Ordering::SeqCst), 0);
    }
}
