//! Arbitrary bytes into the QMP message framer, request checker and command
//! dispatcher (with a fake VM), split into chunks the input chooses. Every
//! reply must be exactly one well-formed JSON object with `return` or
//! `error`, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvirt_qmp::json::{Framed, Streamer};
use rvirt_qmp::{
    ChardevInfo, CpuInfoFast, CpuProps, MonitorBackend, QmpError, RunState, Session, SessionOutput,
};
use std::sync::{Arc, Mutex};

struct FakeVm(Mutex<RunState>);

impl MonitorBackend for FakeVm {
    fn status(&self) -> RunState {
        *self.0.lock().unwrap()
    }
    fn stop(&self) -> Result<(), QmpError> {
        *self.0.lock().unwrap() = RunState::Paused;
        Ok(())
    }
    fn cont(&self) -> Result<(), QmpError> {
        *self.0.lock().unwrap() = RunState::Running;
        Ok(())
    }
    fn system_reset(&self) {}
    fn system_powerdown(&self) {}
    fn quit(&self) {
        *self.0.lock().unwrap() = RunState::Shutdown;
    }
    fn name(&self) -> Option<String> {
        Some("fuzz".into())
    }
    fn uuid(&self) -> Option<String> {
        None
    }
    fn cpus(&self) -> Vec<CpuInfoFast> {
        (0..2)
            .map(|i| CpuInfoFast::x86_64(i, 100 + i, CpuProps::default()))
            .collect()
    }
    fn chardevs(&self) -> Vec<ChardevInfo> {
        Vec::new()
    }
}

struct Check;

impl SessionOutput for Check {
    fn send(&mut self, line: Vec<u8>) {
        let mut s = Streamer::new(usize::MAX);
        s.feed(&line).unwrap();
        match s.next() {
            Some(Framed::Message(v)) => {
                assert!(v.get("return").is_some() != v.get("error").is_some(), "{v}");
            }
            other => panic!("bad reply {other:?}"),
        }
        assert!(s.next().is_none(), "more than one message in a reply");
        assert!(line.ends_with(b"\r\n"));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let vm = Arc::new(FakeVm(Mutex::new(RunState::Prelaunch)));
    // A small size limit now and then exercises the oversize path.
    let limit = if mode & 1 == 0 { 1 << 20 } else { 64 };
    let mut session = Session::new(vm, limit);
    let mut out = Check;
    if mode & 2 != 0 {
        session
            .process(br#"{"execute": "qmp_capabilities"}"#, &mut out)
            .unwrap();
    }
    // Chunk boundaries must not matter; let the input pick them.
    let chunk = usize::from(mode >> 2).max(1);
    for piece in input.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            match session.process(rest, &mut out) {
                Ok(n) => rest = &rest[n..],
                Err(_) => return,
            }
        }
    }
});
