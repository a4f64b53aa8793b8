//! rvirt-vnc: an RFB 3.8 server (3.3 and 3.7 clients too) for rvirt-vmm's
//! graphical console, with no KVM and no device in it. A display device
//! implements [`Framebuffer`]; the keyboard and pointer devices implement
//! [`InputSink`]; the VMM starts a [`VncServer`] over both and reports its
//! [`Event`]s on QMP.
//!
//! Encodings: raw, CopyRect, zlib, ZRLE, the DesktopSize pseudo-encoding
//! and the zlib compress levels; any true-colour pixel format a client
//! asks for (8, 16 or 32 bits, either byte order) and an 8-bit colour map.
//! Security: None and VNC's DES challenge. See README.md for the threads.

mod auth;
mod capture;
mod client;
mod encode;
mod framebuffer;
mod input;
mod pixel;
pub mod proto;
mod server;

pub use auth::response as vnc_auth_response;
pub use capture::{ImageFormat, Screenshot};
pub use framebuffer::{BlankFramebuffer, Damage, Framebuffer, Mode, PixelFormat, Rect};
pub use input::{InputSink, KeyEvent, NoInput, PointerEvent};
pub use pixel::Converter;
pub use server::{
    AddrInfo, Event, EventSink, NoPasswordAuth, Options, SharePolicy, ThreadRole, VncServer,
};
