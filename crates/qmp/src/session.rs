//! One client's protocol state, with no I/O: bytes in, messages out. The
//! server drives it from a socket; tests and the fuzzer drive it directly.

use crate::backend::MonitorBackend;
use crate::commands::{dispatch, negotiate, Fds};
use crate::error::QmpError;
use crate::json::{to_qmp_line, Framed, Streamer, StreamerError};
use crate::message::{Greeting, Request, Response};
use std::sync::Arc;

/// Where a session sends its output.
pub trait SessionOutput {
    /// Queues one serialised reply.
    fn send(&mut self, line: Vec<u8>);
    /// The client has negotiated: from now on it should receive events.
    fn negotiated(&mut self) {}
    /// When true the session stops taking commands until the client has
    /// read some replies (QEMU likewise suspends a monitor whose client
    /// lags), so a client that never reads cannot make us queue without
    /// bound.
    fn congested(&self) -> bool {
        false
    }
}

/// The state of one connected client.
pub struct Session {
    backend: Arc<dyn MonitorBackend>,
    streamer: Streamer,
    negotiated: bool,
    fds: Fds,
}

impl Session {
    /// A session in negotiation mode; `max_message` bounds one message.
    pub fn new(backend: Arc<dyn MonitorBackend>, max_message: usize) -> Self {
        Self {
            backend,
            streamer: Streamer::new(max_message),
            negotiated: false,
            fds: Fds::default(),
        }
    }

    /// Descriptors the client passed (SCM_RIGHTS) with its latest bytes:
    /// the next `getfd` names the first; an earlier batch not taken yet is
    /// closed, as QEMU's socket chardev keeps only the latest.
    pub fn receive_fds(&mut self, fds: Vec<std::os::fd::OwnedFd>) {
        self.fds.received = fds;
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Vec<u8> {
        to_qmp_line(&Greeting::new(self.backend.version()))
    }

    /// Whether `qmp_capabilities` has succeeded.
    pub fn is_negotiated(&self) -> bool {
        self.negotiated
    }

    /// Whether complete messages wait to be handled.
    pub fn has_pending(&self) -> bool {
        self.streamer.ready() > 0
    }

    /// Consumes input and handles the messages it completes, stopping early
    /// while `out` is congested. Returns how many bytes of `input` were
    /// consumed; the caller passes the rest again later. An error means the
    /// client broke a hard limit and must be disconnected.
    pub fn process(
        &mut self,
        input: &[u8],
        out: &mut dyn SessionOutput,
    ) -> Result<usize, StreamerError> {
        let mut consumed = 0;
        loop {
            while !out.congested() {
                match self.streamer.next() {
                    Some(framed) => self.handle(framed, out),
                    None => break,
                }
            }
            if out.congested() || consumed == input.len() {
                return Ok(consumed);
            }
            self.streamer.feed_byte(input[consumed])?;
            consumed += 1;
        }
    }

    fn handle(&mut self, framed: Framed, out: &mut dyn SessionOutput) {
        let response = match framed {
            Framed::Error(desc) => Response::new(Err(QmpError::generic(desc)), None),
            Framed::Message(value) => match Request::from_value(value) {
                Err(bad) => Response::new(Err(bad.error), bad.id),
                Ok(req) => {
                    let result = self.execute(&req, out);
                    Response::new(result, req.id)
                }
            },
        };
        out.send(to_qmp_line(&response));
    }

    fn execute(
        &mut self,
        req: &Request,
        out: &mut dyn SessionOutput,
    ) -> Result<serde_json::Value, QmpError> {
        if self.negotiated {
            return dispatch(&*self.backend, &mut self.fds, &req.execute, &req.arguments);
        }
        if req.execute != "qmp_capabilities" {
            // QEMU has only this command before negotiation and replaces
            // its "not found" message with a hint.
            return Err(QmpError::negotiation_expected());
        }
        let ret = negotiate(&req.arguments)?;
        self.negotiated = true;
        out.negotiated();
        Ok(ret)
    }
}
