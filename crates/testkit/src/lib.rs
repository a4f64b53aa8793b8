//! Deadlines for the tests' children and waits.
//!
//! A test that waits without a limit turns a bug into a hung CI run. Every
//! wait here has one, and when it passes the test fails with what it was
//! waiting for, what the child printed so far and the child's state (its
//! `/proc` status and kernel wait channel, and those of its children), so a
//! hang costs seconds and leaves a diagnosis.
//!
//! - [`run`]: run a command to its end, killed and reported past a limit.
//! - [`Spawned`]: a running child whose output is collected in the
//!   background; read it line by line with a deadline, wait for its end
//!   with a deadline, and it is killed when dropped.
//! - [`wait_for`]: poll a condition until a deadline.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it holds; panics naming `what` after
/// `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to its end with stdout and stderr captured (stdin is
/// `/dev/null` unless the caller set it). Past `limit` the child (and its
/// process group, if it made one) is killed and the test fails with what it
/// printed and the state it was in.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut s = Spawned::start(cmd);
    let status = s.wait(limit);
    Output {
        status,
        stdout: s.stdout(),
        stderr: s.stderr(),
    }
}

/// A child whose stdout and stderr are collected by background threads.
/// Dropping it kills the child (and reaps it).
pub struct Spawned {
    name: String,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    lines: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spawned {
    /// Spawns `cmd` with stdout and stderr piped; stdin is `/dev/null`
    /// unless the caller chose otherwise (`Stdio::piped()` makes
    /// [`Spawned::stdin`] available).
    pub fn start(cmd: &mut Command) -> Self {
        let name = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, lines) = channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = out.clone();
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                lock(&sink).extend_from_slice(&line);
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                line.clear();
            }
        }));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = err.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock(&sink).extend_from_slice(&buf[..n]);
            }
        }));
        Spawned {
            name,
            child,
            out,
            err,
            lines,
            readers,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The child's stdin, when it was spawned with `Stdio::piped()`.
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("stdin was not piped")
    }

    /// What the child wrote to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        lock(&self.out).clone()
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        lock(&self.err).clone()
    }

    /// The next line of stdout (with its newline), or `None` once stdout
    /// ended; fails the test if none comes within `limit`.
    pub fn line(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("no line on stdout within {limit:?}"))
            }
        }
    }

    /// Reads lines until one contains `needle`; returns it. Fails the test
    /// past `limit` or when stdout ends first.
    pub fn line_with(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("stdout ended before a line with {needle:?}"))
                }
                Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                    "no line with {needle:?} on stdout within {limit:?}"
                )),
            }
        }
    }

    /// Waits for the child to exit; fails the test past `limit`. Its
    /// output is complete when this returns.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    // The pipes close when the child (and whatever it
                    // left behind holding them) is gone; a grandchild
                    // keeping them open must not hang the test either.
                    let readers = std::mem::take(&mut self.readers);
                    let until = Instant::now() + Duration::from_secs(5);
                    for r in readers {
                        while !r.is_finished() && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    return s;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => self.fail(&format!("still running after {limit:?}")),
                Err(e) => self.fail(&format!("cannot wait for it: {e}")),
            }
        }
    }

    /// Kills the child and fails the test with `why`, what the child
    /// printed and the state it was in.
    pub fn fail(&mut self, why: &str) -> ! {
        let state = process_state(self.pid());
        self.kill();
        panic!(
            "{}: {why}\n--- its state ---\n{state}--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            String::from_utf8_lossy(&self.stdout()),
            String::from_utf8_lossy(&self.stderr()),
        );
    }

    /// SIGKILL to the child (and its process group when it leads one),
    /// then reaps it.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        let pid = self.pid();
        // SAFETY: getpgid and kill on the pid of a child we have not
        // reaped yet, so it cannot have been reused.
        unsafe {
            if libc::getpgid(pid) == pid {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
        self.status = self.child.wait().ok();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `/proc` tells of `pid` and its descendants: name, state, kernel
/// wait channel, for a report on a process that did not finish.
pub fn process_state(pid: i32) -> String {
    let mut out = String::new();
    describe(pid, 0, &mut out);
    out
}

fn describe(pid: i32, depth: usize, out: &mut String) {
    use std::fmt::Write;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:indent$}pid {pid} {} state {} wchan {} threads {}: {}",
        "",
        field("Name:"),
        field("State:"),
        if wchan.is_empty() { "?" } else { wchan.trim() },
        field("Threads:"),
        cmdline.trim(),
        indent = depth * 2
    );
    if depth > 4 {
        return;
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            describe(c, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_the_output() {
        let out = run(
            Command::new("sh").args(["-c", "echo hi; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn run_fails_a_hang_with_output_and_state() {
        let r = std::panic::catch_unwind(|| {
            run(
                Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
                Duration::from_millis(300),
            )
        });
        let msg = *r
            .expect_err("a hang must fail")
            .downcast::<String>()
            .unwrap();
        assert!(msg.contains("still running after"), "{msg}");
        assert!(msg.contains("started"), "{msg}");
        assert!(msg.contains("sleep"), "{msg}");
    }

    #[test]
    fn lines_come_with_a_deadline() {
        let mut s = Spawned::start(Command::new("sh").args(["-c", "echo a; echo b; sleep 30"]));
        assert_eq!(s.line(Duration::from_secs(10)).as_deref(), Some("a\n"));
        assert_eq!(s.line_with("b", Duration::from_secs(10)), "b\n");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.line(Duration::from_millis(200))
        }));
        assert!(r.is_err());
    }

    #[test]
    fn wait_for_fails_past_its_limit() {
        let r = std::panic::catch_unwind(|| wait_for("never", Duration::from_millis(50), || false));
        assert!(r.is_err());
        wait_for("at once", Duration::from_millis(50), || true);
    }
}
