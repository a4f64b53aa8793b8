//! Shared test fixtures: a mock VM behind the monitor and a raw client.
#![allow(dead_code)]

use rvirt_qmp::json::{Framed, Streamer};
use rvirt_qmp::{
    ChardevInfo, CpuInfoFast, CpuProps, Event, EventBus, MonitorBackend, MonitorConfig,
    MonitorServer, QmpError, RunState, ShutdownCause,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A VM with a run state that follows QEMU's transitions and posts the
/// events QEMU posts.
pub struct MockVm {
    pub state: Mutex<RunState>,
    pub bus: EventBus,
    pub cpus: usize,
    pub name: Option<String>,
    pub quits: AtomicUsize,
}

impl MockVm {
    pub fn new(bus: EventBus, state: RunState) -> Self {
        Self {
            state: Mutex::new(state),
            bus,
            cpus: 1,
            name: None,
            quits: AtomicUsize::new(0),
        }
    }
}

impl MonitorBackend for MockVm {
    fn status(&self) -> RunState {
        *self.state.lock().unwrap()
    }

    fn stop(&self) -> Result<(), QmpError> {
        let mut s = self.state.lock().unwrap();
        if *s == RunState::Running {
            *s = RunState::Paused;
            self.bus.post(Event::Stop);
        }
        Ok(())
    }

    fn cont(&self) -> Result<(), QmpError> {
        let mut s = self.state.lock().unwrap();
        if *s != RunState::Running {
            *s = RunState::Running;
            self.bus.post(Event::Resume);
        }
        Ok(())
    }

    fn system_reset(&self) {
        let mut s = self.state.lock().unwrap();
        self.bus
            .post(Event::reset(ShutdownCause::HostQmpSystemReset));
        // QEMU leaves a VM that was not running in prelaunch after a reset.
        if *s != RunState::Running {
            *s = RunState::Prelaunch;
        }
    }

    fn system_powerdown(&self) {
        self.bus.post(Event::Powerdown);
    }

    fn quit(&self) {
        self.quits.fetch_add(1, Ordering::SeqCst);
        self.bus.post(Event::shutdown(ShutdownCause::HostQmpQuit));
    }

    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    fn uuid(&self) -> Option<String> {
        None
    }

    fn cpus(&self) -> Vec<CpuInfoFast> {
        (0..self.cpus)
            .map(|i| {
                let props = CpuProps {
                    core_id: i as i64,
                    ..Default::default()
                };
                CpuInfoFast::x86_64(i as i64, 1000 + i as i64, props)
            })
            .collect()
    }

    fn chardevs(&self) -> Vec<ChardevInfo> {
        vec![ChardevInfo {
            label: "compat_monitor0".into(),
            filename: "unix:/tmp/q.sock,server=on".into(),
            frontend_open: true,
        }]
    }
}

/// A running server on a socket in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub vm: Arc<MockVm>,
    pub bus: EventBus,
    pub server: Option<MonitorServer>,
}

impl Fixture {
    pub fn new(state: RunState) -> Self {
        Self::with(state, |_| {}, MonitorConfig::default())
    }

    pub fn with(state: RunState, tweak: impl FnOnce(&mut MockVm), config: MonitorConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let bus = EventBus::new();
        let mut vm = MockVm::new(bus.clone(), state);
        tweak(&mut vm);
        let vm = Arc::new(vm);
        let mut server = MonitorServer::with_config(vm.clone(), bus.clone(), config).unwrap();
        server.listen_unix(&path, "compat_monitor0").unwrap();
        Self {
            dir,
            path,
            vm,
            bus,
            server: Some(server),
        }
    }

    pub fn connect(&self) -> Raw {
        Raw::connect(&self.path)
    }

    /// Connected, greeted and negotiated.
    pub fn client(&self) -> Raw {
        let mut c = self.connect();
        c.recv();
        c.send(b"{\"execute\": \"qmp_capabilities\"}");
        assert_eq!(c.recv()["return"], serde_json::json!({}));
        c
    }
}

pub const WAIT: Duration = Duration::from_secs(5);

/// A client that sends raw bytes and reads framed messages.
pub struct Raw {
    pub stream: UnixStream,
    streamer: Streamer,
}

impl Raw {
    pub fn connect(path: &Path) -> Self {
        Self::from_stream(UnixStream::connect(path).unwrap())
    }

    pub fn from_stream(stream: UnixStream) -> Self {
        Self {
            stream,
            streamer: Streamer::new(64 << 20),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next message, or `None` on timeout or EOF.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        loop {
            match self.streamer.next() {
                Some(Framed::Message(v)) => return Some(v),
                Some(Framed::Error(e)) => panic!("server sent invalid JSON: {e}"),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.streamer.feed(&buf[..n]).unwrap(),
                Err(_) => return None,
            }
        }
    }

    pub fn recv(&mut self) -> Value {
        self.try_recv(WAIT).expect("no message from the server")
    }

    /// Sends a command and returns its reply, collecting events before it.
    pub fn cmd(&mut self, text: &str) -> (Value, Vec<Value>) {
        self.send(text.as_bytes());
        let mut events = Vec::new();
        loop {
            let m = self.recv();
            if m.get("event").is_some() {
                events.push(m);
            } else {
                return (m, events);
            }
        }
    }

    /// True if the server closed the connection (reads EOF) within WAIT.
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            self.stream.set_read_timeout(Some(WAIT)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
        false
    }
}
