//! libvirt's remote protocol, as spoken between virsh and libvirtd: the
//! wire format rvirtd serves and rvirsh uses.
//!
//! - [`xdr`]: the XDR encoding with libvirt's quirks and limits.
//! - [`message`], [`frame`]: header, message, and cutting a byte stream
//!   into messages.
//! - [`procedures`] (table), [`calls`] (structs), [`types`]: every
//!   procedure's number, argument and return type.
//! - [`names`]: the name of every libvirt procedure by number, known to
//!   rvirt or not.
//! - [`error`]: `remote_error` with libvirt's codes and message shapes.
//! - [`event`]: domain states, reasons and lifecycle events, with virsh's words.
//! - [`keepalive`], [`server`], [`handshake`], [`client`], [`uri`]: the two ends.
//!
//! Nothing a peer sends can panic the decoder or make it allocate more
//! than the bytes it actually sent.

pub mod calls;
pub mod client;
pub mod consts;
pub mod error;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod keepalive;
pub mod message;
pub mod names;
pub mod procedures;
pub mod server;
pub mod types;
pub mod uri;
pub mod xdr;

pub use client::{Async, Client, ClientError, ClientOptions, Pending, StreamSender};
pub use error::RemoteError;
pub use frame::{FrameDecoder, FrameError};
pub use message::{Header, Message, MessageStatus, MessageType};
pub use procedures::{procs, Args, Procedure, RemoteProcedure, Ret};
pub use types::{NonnullDomain, TypedParam, TypedParamValue, Uuid};
pub use uri::{parse_uri, resolve_uri, RemoteUri};
pub use xdr::{Xdr, XdrError};
