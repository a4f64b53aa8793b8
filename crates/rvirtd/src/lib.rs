//! rvirtd: rvirt's management daemon. It plays libvirtd's role and speaks
//! libvirt's remote protocol on a UNIX socket, so the real `virsh` (and
//! rvirsh) manage rvirt VMs: definitions on disk, one rvirt-vmm process
//! per running domain followed over QMP, state that survives a daemon
//! restart.
//!
//! | module | job |
//! | --- | --- |
//! | `paths` | the tree: system, session or `--root` |
//! | `fsutil` | atomic writes, the one-daemon-per-tree lock |
//! | `store` | definitions and autostart links on disk |
//! | `runtime` | the per-VM runtime record (pid, monitor, id, live XML) |
//! | `registry` | the domain table |
//! | `daemon` | shared state, state transitions with their events |
//! | `definitions` | define, undefine, create, autostart |
//! | `lifecycle` | start, destroy, shutdown, suspend, resume, reboot, QMP followers |
//! | `recover` | start-up: load, re-adopt running VMs, autostart |
//! | `process` | VMM processes: spawn, signals, pidfd waits |
//! | `ptys` | serial ptys in the live XML |
//! | `tap` | the NICs' host taps (bridge port, MAC, up), passed to the VMM by descriptor |
//! | `serial_log` | serial0's pty read into the domain log (and the open console) |
//! | `query` | lists, info, state, XML, vCPUs |
//! | `capabilities` | the capabilities and domain capabilities XML |
//! | `stats` | CONNECT_GET_ALL_DOMAIN_STATS |
//! | `dispatch` | procedure -> operation |
//! | `extra` | procedures outside rvirt-remote's table (vCPU pin info) |
//! | `server`, `connection`, `outbox` | socket, one client's loop and answers, its send queue |
//! | `events`, `console`, `access` | event callbacks, consoles (a serial pty as a stream), read-only connections |

// Operations fail with libvirt's `remote_error` as the wire carries it;
// errors are the rare path, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod capabilities;
pub mod connection;
pub mod console;
pub mod daemon;
pub mod definitions;
pub mod dispatch;
pub mod events;
pub mod extra;
pub mod fsutil;
pub mod hostinfo;
pub mod lifecycle;
pub mod outbox;
pub mod paths;
pub mod process;
pub mod ptys;
pub mod query;
pub mod recover;
pub mod registry;
pub mod runtime;
pub mod serial_log;
pub mod server;
pub mod stats;
pub mod store;
pub mod tap;

pub use daemon::{Config, Daemon};
pub use paths::Tree;
