//! Deadlines for the tests' children and waits.
//!
//! A test that waits without a limit turns a bug into a hung CI run. Every
//! wait here has one, and when it passes the test fails with what it was
//! waiting for, what the child printed so far and the child's state (its
//! `/proc` status and kernel wait channel, and those of its children), so a
//! hang costs seconds and leaves a diagnosis.
//!
//! - Children: [`run`] runs a command to its end ([`try_run`] for clean-up
//!   code, which must not panic); [`Spawned`] is a running child whose
//!   output is collected in the background, read line by line or waited on
//!   with a deadline, and killed when dropped; [`KillOnDrop`] kills a
//!   process the test did not spawn itself (a daemonized VMM, one a daemon
//!   started).
//! - Waits: [`wait_for`] and [`poll`] poll a condition until a deadline;
//!   [`wait_listening`] waits for a Unix socket to accept connections;
//!   [`within`] runs a call that cannot be given a timeout on a thread of
//!   its own and fails past its deadline.
//! - Streams: [`read_until`], [`read_exact`] and [`read_to_end`] read a
//!   socket, pipe or pty with a deadline; [`SocketDeadline`] shuts a socket
//!   down under a client library that blocks on it without a timeout.
//! - Networks: [`netns::in_netns`] runs a test in a private network
//!   namespace, [`netns::routed`] gives it a default route (what passt
//!   copies), [`netns::own_ports`] gives a test's thread TCP ports of its
//!   own (VNC from 5900), [`netns::ip`] runs iproute2 with a deadline.

mod child;
mod io;
mod wait;

pub mod netns;

pub use child::{catches, process_state, run, threads, try_run, KillOnDrop, Spawned};
pub use io::{read_exact, read_to_end, read_until, SocketDeadline};
pub use wait::{is_listening, poll, wait_for, wait_listening, within};
