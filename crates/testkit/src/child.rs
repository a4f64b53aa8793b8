//! Children run, read and waited on with a deadline.

use std::io::Read;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `cmd` to its end with stdout and stderr captured (stdin is
/// `/dev/null` unless the caller set it). Past `limit` the child (and its
/// process group, if it made one) is killed and the test fails with what it
/// printed and the state it was in.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    Spawned::start(cmd).output(limit)
}

/// [`run`] that returns the failure report instead of failing the test:
/// for clean-up in `Drop`, where a second panic would abort the tests.
pub fn try_run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut s = Spawned::try_start(cmd).map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    match s.wait_until(Instant::now() + limit) {
        Ok(status) => Ok(Output {
            status,
            stdout: s.stdout(),
            stderr: s.stderr(),
        }),
        Err(why) => Err(s.report(&why)),
    }
}

/// What a failure report adds about the world around the child (a
/// daemon's log, its state).
type Context = Box<dyn Fn() -> String + Send>;

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
    context: Option<Context>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spawned {
    /// Spawns `cmd` with stdout and stderr piped; stdin is `/dev/null`
    /// unless the caller chose otherwise (`Stdio::piped()` makes
    /// [`Spawned::stdin`] available).
    pub fn start(cmd: &mut Command) -> Self {
        Self::try_start(cmd).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
    }

    /// [`Spawned::start`] that returns the error when the child cannot be
    /// spawned (a `pre_exec` hook that failed, say), for tests that skip
    /// what the machine cannot do.
    pub fn try_start(cmd: &mut Command) -> std::io::Result<Self> {
        let name = format!("{:?}", cmd.get_program());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let (tx, lines) = channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = out.clone();
        readers.push(std::thread::spawn(move || {
            // What arrives is kept at once, a line's end or not (a prompt
            // waits for an answer without one); whole lines also go to
            // the channel `line` reads.
            let mut stdout = stdout;
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock(&sink).extend_from_slice(&buf[..n]);
                for part in buf[..n].split_inclusive(|&b| b == b'\n') {
                    line.extend_from_slice(part);
                    if part.ends_with(b"\n") {
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                        line.clear();
                    }
                }
            }
            if !line.is_empty() {
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
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
        Ok(Spawned {
            name,
            child,
            out,
            err,
            lines,
            readers,
            status: None,
            context: None,
        })
    }

    /// Adds what `f` returns to every failure report of this child: the
    /// state of what it talks to (a daemon's log), which the child's own
    /// output and state do not show.
    pub fn on_fail(mut self, f: impl Fn() -> String + Send + 'static) -> Self {
        self.context = Some(Box::new(f));
        self
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The child's stdin, when it was spawned with `Stdio::piped()`.
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("stdin was not piped")
    }

    /// Closes the child's stdin (its end of input), if it was piped.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// What the child wrote to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        lock(&self.out).clone()
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        lock(&self.err).clone()
    }

    /// [`Spawned::stdout`] as text (lossily decoded).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.out)).into_owned()
    }

    /// [`Spawned::stderr`] as text (lossily decoded).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.err)).into_owned()
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

    /// Waits until `done(stdout, stderr)` holds on what the child printed
    /// so far (checked every 20 ms). Fails the test past `limit`, naming
    /// `what`, or as soon as the child exits without it holding.
    pub fn until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&str, &str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.stdout_text(), &self.stderr_text()) {
                return;
            }
            if let Some(status) = self.try_wait() {
                // Its last words may still be in the pipes.
                self.drain();
                if done(&self.stdout_text(), &self.stderr_text()) {
                    return;
                }
                self.fail(&format!("exited ({status}) before {what}"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("no {what} within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(s) => self.status = s,
                Err(e) => self.fail(&format!("cannot wait for it: {e}")),
            }
        }
        self.status
    }

    /// Sends `signal` to the child, unless it was reaped already (its pid
    /// may belong to another process by then).
    pub fn signal(&self, signal: i32) {
        if self.status.is_none() {
            // SAFETY: kill on the pid of a child not reaped yet (a zombie
            // keeps its pid), so the signal cannot reach another process.
            unsafe { libc::kill(self.pid(), signal) };
        }
    }

    /// Waits for the child to exit; fails the test past `limit`. Its
    /// output is complete when this returns.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        match self.wait_until(Instant::now() + limit) {
            Ok(s) => s,
            Err(why) => self.fail(&why),
        }
    }

    fn wait_until(&mut self, deadline: Instant) -> Result<ExitStatus, String> {
        let start = Instant::now();
        loop {
            if self.status.is_none() {
                self.status = self
                    .child
                    .try_wait()
                    .map_err(|e| format!("cannot wait for it: {e}"))?;
            }
            if let Some(s) = self.status {
                self.drain();
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(format!("still running after {:?}", start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the child to exit (see [`Spawned::wait`]) and returns its
    /// status and all it printed.
    pub fn output(mut self, limit: Duration) -> Output {
        let status = self.wait(limit);
        Output {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Lets the output readers finish once the child has exited. The pipes
    /// close when the child (and whatever it left behind holding them) is
    /// gone; a grandchild keeping them open must not hang the test either.
    fn drain(&mut self) {
        let until = Instant::now() + Duration::from_secs(5);
        for r in std::mem::take(&mut self.readers) {
            while !r.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Kills the child and fails the test with `why`, what the child
    /// printed and the state it was in.
    pub fn fail(&mut self, why: &str) -> ! {
        panic!("{}", self.report(why))
    }

    /// Kills the child and describes it for a failure: `why`, its state
    /// (taken before the kill), what it printed, and the context.
    fn report(&mut self, why: &str) -> String {
        let state = self.state();
        self.kill();
        let context = self
            .context
            .as_ref()
            .map(|f| format!("\n--- context ---\n{}", f()))
            .unwrap_or_default();
        format!(
            "{}: {why}\n--- its state ---\n{state}--- stdout ---\n{}\n--- stderr ---\n{}{context}",
            self.name,
            tail(&self.stdout_text()),
            tail(&self.stderr_text()),
        )
    }

    /// Its state (see [`process_state`]) or its exit status.
    fn state(&self) -> String {
        match self.status {
            Some(s) => format!("exited: {s}\n"),
            None => process_state(self.pid()),
        }
    }

    /// The child's state and the end of its stderr, for the report of a
    /// wait on something it feeds (a serial port's file, a socket): what
    /// [`Spawned::fail`] shows, without killing it.
    pub fn describe(&self) -> String {
        format!(
            "{}:\n{}--- its stderr ---\n{}",
            self.name,
            self.state(),
            tail(&self.stderr_text())
        )
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

/// The last 64 KiB of `text`: a guest flooding its console must not
/// flood the report.
fn tail(text: &str) -> &str {
    const KEEP: usize = 64 << 10;
    if text.len() <= KEEP {
        return text;
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Kills a process the test did not spawn itself (a VMM that daemonized,
/// one that a daemon under test started) when dropped, so that it never
/// outlives a failing test. It is told apart from a later process that
/// reuses its pid by its start time.
pub struct KillOnDrop {
    pid: i32,
    started: Option<u64>,
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`) and whether it
/// is a zombie, or `None` when there is no such process.
fn stat(pid: i32) -> Option<(u64, bool)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it follow its last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first() == Some(&"Z");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

impl KillOnDrop {
    /// Takes charge of `pid`, which must be running now.
    pub fn new(pid: i32) -> Self {
        KillOnDrop {
            pid,
            started: stat(pid).map(|(t, _)| t),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process is still there (a zombie is not).
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((t, false)) if Some(t) == self.started)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.alive() {
            // SAFETY: kill sends a signal to one positive pid, checked
            // above to be the process this guard took charge of.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Whether `pid` has a handler for `signal` now (`SigCgt` in its
/// `/proc` status): a signal sent before a program installs its handler
/// takes the default action (SIGINT, SIGTERM: it dies), so a test that
/// means to exercise the handler waits for this first.
pub fn catches(pid: i32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0)
}

/// The threads of `pid`: (thread id, name), as `/proc` lists them now.
pub fn threads(pid: i32) -> Vec<(i32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim().to_string()))
        })
        .collect()
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

    fn panic_text(r: std::thread::Result<impl Sized>) -> String {
        let p = r.err().expect("it must fail");
        match p.downcast::<String>() {
            Ok(s) => *s,
            Err(p) => p.downcast_ref::<&str>().unwrap_or(&"?").to_string(),
        }
    }

    #[test]
    fn a_prompt_without_a_newline_shows_at_once() {
        let mut child = Spawned::start(
            Command::new("sh")
                .args(["-c", "printf 'Try again? '; read x; echo \"got $x\""])
                .stdin(std::process::Stdio::piped()),
        );
        child.until("the prompt", Duration::from_secs(10), |o, _| {
            o == "Try again? "
        });
        std::io::Write::write_all(child.stdin(), b"y\n").unwrap();
        // Lines still come whole, the prompt's with the answer after it.
        assert_eq!(
            child.line(Duration::from_secs(10)).unwrap(),
            "Try again? got y\n"
        );
    }

    #[test]
    fn catches_tells_a_handler_from_the_default() {
        // The shell traps SIGUSR1 only after its first line.
        let mut child = Spawned::start(
            Command::new("sh")
                .args(["-c", "read x; trap 'echo got' USR1; echo trapped; read y"])
                .stdin(std::process::Stdio::piped()),
        );
        assert!(!catches(child.pid(), libc::SIGUSR1));
        std::io::Write::write_all(child.stdin(), b"go\n").unwrap();
        child.line_with("trapped", Duration::from_secs(10));
        assert!(catches(child.pid(), libc::SIGUSR1));
        assert!(!catches(child.pid(), 0) && !catches(child.pid(), 65));
    }

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
        let msg = panic_text(std::panic::catch_unwind(|| {
            run(
                Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
                Duration::from_millis(300),
            )
        }));
        assert!(msg.contains("still running after"), "{msg}");
        assert!(msg.contains("started"), "{msg}");
        assert!(msg.contains("sleep"), "{msg}");
    }

    #[test]
    fn try_run_reports_instead_of_failing() {
        let out = try_run(&mut Command::new("true"), Duration::from_secs(10)).unwrap();
        assert!(out.status.success());
        let why = try_run(
            Command::new("sh").args(["-c", "echo late; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            why.contains("still running after") && why.contains("late"),
            "{why}"
        );
        assert!(try_run(&mut Command::new("/nonexistent"), Duration::from_secs(1)).is_err());
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
    fn until_sees_both_streams_and_fails_with_context() {
        let mut s =
            Spawned::start(Command::new("sh").args(["-c", "echo out; echo err >&2; sleep 30"]))
                .on_fail(|| "the daemon said hello".into());
        s.until("both lines", Duration::from_secs(10), |o, e| {
            o.contains("out") && e.contains("err")
        });
        let msg = panic_text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || {
                s.until("a third", Duration::from_millis(200), |o, _| {
                    o.contains("third")
                })
            },
        )));
        assert!(msg.contains("no a third within"), "{msg}");
        assert!(msg.contains("the daemon said hello"), "{msg}");
        assert!(msg.contains("state S"), "{msg}");
    }

    #[test]
    fn describe_tells_the_state_without_killing() {
        let mut s = Spawned::start(Command::new("sh").args(["-c", "echo oops >&2; exec sleep 30"]));
        s.until("its complaint", Duration::from_secs(10), |_, e| {
            e.contains("oops")
        });
        // Just after the exec, sleep may not have gone to sleep yet (state
        // R on a loaded machine): the state is the one at the moment asked.
        let d = crate::poll("sleep to be asleep", Duration::from_secs(10), || {
            let d = s.describe();
            if d.contains("state S") {
                Ok(d)
            } else {
                Err(d)
            }
        });
        assert!(d.contains("oops"), "{d}");
        assert_eq!(s.try_wait(), None);
    }

    #[test]
    fn reports_keep_the_end_of_a_flood() {
        let long = format!("{}end", "x".repeat(100 << 10));
        assert_eq!(tail(&long).len(), 64 << 10);
        assert!(tail(&long).ends_with("end"));
        assert_eq!(tail("short"), "short");
    }

    #[test]
    fn until_fails_at_once_when_the_child_exits() {
        let mut s = Spawned::start(Command::new("sh").args(["-c", "echo bye; exit 4"]));
        let start = Instant::now();
        let msg = panic_text(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || {
                s.until("a greeting", Duration::from_secs(30), |o, _| {
                    o.contains("hello")
                })
            },
        )));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(msg.contains("before a greeting"), "{msg}");
        assert!(msg.contains("exit status: 4"), "{msg}");
        assert!(msg.contains("bye"), "{msg}");
    }

    #[test]
    fn signals_reach_the_child() {
        let mut s = Spawned::start(Command::new("sleep").arg("30"));
        assert_eq!(s.try_wait(), None);
        s.signal(libc::SIGTERM);
        let status = s.wait(Duration::from_secs(10));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Reaped: signalling again does nothing.
        s.signal(libc::SIGTERM);
    }

    #[test]
    fn kill_on_drop_kills_a_process_it_did_not_spawn() {
        // A shell that starts a sleep in the background and says its pid:
        // the sleep is the shell's child, not ours.
        let out = run(
            Command::new("sh").args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"]),
            Duration::from_secs(10),
        );
        let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let guard = KillOnDrop::new(pid);
        assert!(guard.alive());
        let same = KillOnDrop::new(pid);
        drop(guard);
        crate::wait_for("the sleep to die", Duration::from_secs(10), || {
            !same.alive()
        });
        // Nothing there any more: dropping does nothing.
        drop(same);
    }
}
