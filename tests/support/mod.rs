//! Test harness: a real `redis-server` on a free loopback port in its own temp dir, and
//! the real `counter-worker` binary as a child process whose output is read line by line
//! as it arrives.
//!
//! Every test gets its own Redis, so tests run in parallel without sharing keys. Both
//! kinds of process are killed when their handle is dropped, also when a test fails.

// Each test crate (worker, faults, sentinel, …) uses its own part of this shared harness.
#![allow(dead_code)]

pub mod cluster_lab;
pub mod monitor;
pub mod net;
pub mod sentinel_lab;
pub mod tls_lab;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Long enough for a loaded 2-core CI machine; these bound waits, they measure nothing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `done` until it holds, failing the test after `patience`.
pub fn wait_until(what: &str, patience: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {patience:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A `redis-server` owned by one test. It may be stopped and started again on the same
/// port and data directory, the way an operator restarts Redis.
pub struct RedisServer {
    dir: TempDir,
    port: u16,
    password: Option<String>,
    kind: Kind,
    process: Option<Child>,
}

/// What the process is: a Redis holding data, or a sentinel watching one.
enum Kind {
    /// A Redis with every write persisted, and these extra `redis-server` arguments.
    Data(Vec<String>),
    /// A sentinel started from this configuration file, which it rewrites as it learns.
    Sentinel(PathBuf),
}

impl RedisServer {
    /// A running Redis with persistence on every write, so a restart loses nothing.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// A running Redis that refuses clients without `password`, if given.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut server = Self::not_started(password);
        server.launch();
        server
    }

    /// A running Redis started with `args` on top of the harness's own, e.g.
    /// `["--timeout", "1"]`.
    pub fn start_with_args(args: &[&str]) -> Self {
        let mut server = Self::not_started(None).with_args(args);
        server.launch();
        server
    }

    /// A running replica whose master is gone (nothing listens on its port), started
    /// with `args` on top, e.g. `["--replica-read-only", "no"]`.
    pub fn orphan_replica(args: &[&str]) -> Self {
        let dead = free_port().to_string();
        let mut server = Self::not_started(None)
            .with_args(&["--replicaof", "127.0.0.1", &dead])
            .with_args(args);
        server.launch();
        server
    }

    /// A port and data directory for a Redis that is not running yet.
    pub fn not_started(password: Option<&str>) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir for Redis"),
            port: free_port(),
            password: password.map(str::to_owned),
            kind: Kind::Data(Vec::new()),
            process: None,
        }
    }

    /// Adds `redis-server` arguments (e.g. `--replicaof`) to a data node, kept across
    /// restarts.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        let Kind::Data(extra) = &mut self.kind else {
            panic!("a sentinel takes its settings from its configuration file");
        };
        extra.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// A sentinel, not running yet, whose configuration starts as `config`; `password`
    /// is the one its clients must give.
    pub fn sentinel_not_started(config: &str, password: Option<&str>) -> Self {
        let mut server = Self::not_started(password);
        let file = server.dir.path().join("sentinel.conf");
        std::fs::write(&file, config).expect("write sentinel.conf");
        server.kind = Kind::Sentinel(file);
        server
    }

    /// The URL the worker should use; it carries no password.
    pub fn url(&self) -> String {
        loopback_url(self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts (or restarts) Redis and waits until it answers `PING`.
    pub fn launch(&mut self) {
        assert!(self.process.is_none(), "Redis is already running");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("Redis log");
        let mut command = Command::new(server_binary());
        if let Kind::Sentinel(config) = &self.kind {
            // The configuration file must come first.
            command.arg(config).arg("--sentinel");
        }
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log)
            .stderr(Stdio::null());
        if let Kind::Data(extra) = &self.kind {
            command
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .args(extra);
        }
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().unwrap_or_else(|err| {
            panic!("cannot start redis-server (is it installed and on PATH?): {err}")
        });
        self.process = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.has_loaded() {
                return;
            }
            if let Some(status) = self.process.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "redis-server exited with {status}: {}",
                    self.log().lines().last().unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer within {PATIENCE:?}");
    }

    /// True once Redis has loaded its data: it answers a `PING` with anything but
    /// `LOADING` (a replica cut off from its master may say `MASTERDOWN`). A connection
    /// alone is not enough: while it loads, Redis accepts connections and answers every
    /// command `LOADING` (Redis 6.2: `PING` too).
    fn has_loaded(&self) -> bool {
        let reply = self
            .connection()
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
        match reply {
            Ok(_) => true,
            Err(err) => match err.kind() {
                redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading) => false,
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => true,
                _ => false,
            },
        }
    }

    /// Kills Redis with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.process.take().expect("Redis is not running");
        child.kill().expect("kill redis-server");
        child.wait().expect("reap redis-server");
    }

    /// Sends `signal` to Redis, e.g. `SIGSTOP` to freeze it as a stalled host would.
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.process.as_ref().expect("Redis is not running");
        send_signal(child.id(), signal);
    }

    /// A fresh connection from the test's side, authenticated when needed.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let info = redis::IntoConnectionInfo::into_connection_info(self.url())?;
        // No `CLIENT SETINFO`, as the worker: Redis 7.0 answers it with an error that the
        // ACL tests would count against the worker.
        let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        redis::Client::open(info.set_redis_settings(settings))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Runs one command from the test's side.
    pub fn query<T: redis::FromRedisValue>(&self, command: &mut redis::Cmd) -> T {
        let mut connection = self.connection().expect("test connection to Redis");
        command.query(&mut connection).expect("test command")
    }

    /// Starts watching every command this Redis executes.
    pub fn monitor(&self) -> monitor::Monitor {
        monitor::Monitor::start(self.port, self.password.as_deref())
    }

    /// A counter of `INFO stats`, e.g. `total_connections_received`, read on
    /// `connection` (kept open by the test, so reading adds no connection).
    pub fn stat(connection: &mut redis::Connection, field: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(connection)
            .expect("INFO stats");
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO stats"))
            .trim()
            .parse()
            .expect("a number")
    }

    /// The integer under `key`, or `None` when the key does not exist.
    pub fn counter(&self, key: &str) -> Option<i64> {
        self.query(redis::cmd("GET").arg(key))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server the tests run: `redis-server` from `PATH`, unless `COUNTER_WORKER_TEST_SERVER`
/// names another binary (Valkey, Redict, another Redis version; `scripts/server-matrix`).
pub fn server_binary() -> String {
    std::env::var("COUNTER_WORKER_TEST_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// The URL of a Redis on this machine's loopback interface.
pub fn loopback_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// A loopback port nobody listens on right now, for a server a test starts.
///
/// Taken below the kernel's ephemeral range (32768 and up), never from it: a port there,
/// freed for the server to bind, can meanwhile become the local port of any outgoing
/// connection, and the server then fails to listen. Each test process walks the range from
/// its own place, so processes running side by side rarely try the same port, and never
/// hands out a port twice.
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919);
    loop {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        let port = u16::try_from(FIRST + offset).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Output lines of a child process, appended by a reader thread as they arrive.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<Captured>, Condvar)>);

/// What a reader thread has read so far, and whether it has reached the stream's end.
#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    ended: bool,
}

impl Lines {
    fn collect_from(stream: impl Read + Send + 'static) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        thread::spawn(move || {
            let (captured, arrived) = &*sink.0;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                captured.lock().unwrap().lines.push(line);
                arrived.notify_all();
            }
            captured.lock().unwrap().ended = true;
            arrived.notify_all();
        });
        lines
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.0.lock().unwrap().lines.clone()
    }

    /// Waits up to `patience` for the reader to reach the end of the stream, so that a
    /// process that has exited has had everything it wrote read; whether it did.
    fn wait_for_end(&self, patience: Duration) -> bool {
        let (captured, arrived) = &*self.0;
        let captured = captured.lock().unwrap();
        let (captured, _) = arrived
            .wait_timeout_while(captured, patience, |captured| !captured.ended)
            .unwrap();
        captured.ended
    }

    /// Waits up to `patience` until a line after the first `skip` ones satisfies `wanted`;
    /// returns its index.
    fn wait_for(
        &self,
        skip: usize,
        wanted: &dyn Fn(&str) -> bool,
        patience: Duration,
    ) -> Option<usize> {
        let (captured, arrived) = &*self.0;
        let deadline = Instant::now() + patience;
        let mut captured = captured.lock().unwrap();
        loop {
            let mut lines = captured.lines.iter().skip(skip);
            if let Some(found) = lines.position(|line| wanted(line)) {
                return Some(skip + found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            captured = arrived.wait_timeout(captured, left).unwrap().0;
        }
    }
}

/// Asserts that `counts`, a worker's logged counts, are `first`, `first + 1`, … each once
/// and in order, as counting exactly once promises; returns the last.
pub fn assert_each_count_once(counts: &[i64], first: i64, output: &str) -> i64 {
    let expected: Vec<i64> = (first..).take(counts.len()).collect();
    assert_eq!(
        counts, expected,
        "counts not logged once each, in order: {output}"
    );
    *counts.last().expect("at least one count")
}

/// A running `counter-worker` with a clean environment plus the variables a test gives.
pub struct Worker {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

/// Runs the binary under test with only `env` set and waits for it to exit, at most
/// [`PATIENCE`]: a binary that hangs fails the test instead of hanging it.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = output_within(worker_command(args, env), PATIENCE);
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command` to its end like [`Command::output`], but kills it and fails the test
/// when it is still running after `patience`.
pub fn output_within(mut command: Command, patience: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let stdout = read_in_thread(child.stdout.take().expect("piped"));
    let stderr = read_in_thread(child.stderr.take().expect("piped"));
    let Some(status) = wait_within(&mut child, patience) else {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = stderr.join().unwrap_or_default();
        panic!(
            "{command:?} still running after {patience:?}; stderr:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads `stream` to its end on a thread of its own.
fn read_in_thread(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` to exit, at most `patience`; `None` if it is still running.
pub fn wait_within(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The binary under test with `args`, a clean environment and `env`. Progress is not
/// recorded for the health check unless `env` sets `HEALTH_FILE`, so parallel tests
/// never share a state file.
pub fn worker_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_counter-worker"));
    command
        .args(args)
        .env_clear()
        .env("HEALTH_FILE", "")
        .envs(env.iter().copied());
    command
}

/// Short ticks keep the suites quick; the default of 2 s is checked in its own test.
pub const FAST: &str = "100ms";

/// A worker for the Redis at `url`, ticking every [`FAST`], with `extra` settings.
pub fn fast_worker(url: &str, extra: &[(&str, &str)]) -> Worker {
    let mut env = vec![("REDIS_URL", url), ("INTERVAL", FAST)];
    env.extend_from_slice(extra);
    Worker::start(&env)
}

/// Sends `signal` to the process `pid` that this test spawned.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal}) failed");
}

impl Worker {
    /// Starts the worker with only `env` set (no inherited `REDIS_URL` or `RUST_LOG`).
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::spawn(worker_command(&[], env))
    }

    /// Starts the worker half-way through a second of the wall clock, so its ticks (at
    /// whole seconds apart) land there.
    ///
    /// Redis counts a connection's idle time in whole seconds of its wall clock and checks
    /// ten times a second, so a `--timeout` closes an idle connection just after a second
    /// begins. A tick just after a second begins would race that check, and the test would
    /// not know whether Redis closed anything; half-way through, every close comes first.
    pub fn start_mid_second(env: &[(&str, &str)]) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970");
        let into_second = Duration::from_nanos(u64::from(now.subsec_nanos()));
        let half = Duration::from_millis(500);
        let wait = if into_second <= half {
            half - into_second
        } else {
            Duration::from_secs(1) + half - into_second
        };
        thread::sleep(wait);
        Self::start(env)
    }

    /// Starts `command` (from [`worker_command`]) with its output read line by line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start counter-worker");
        let stdout = Lines::collect_from(child.stdout.take().unwrap());
        let stderr = Lines::collect_from(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Everything the worker has written to stdout and stderr so far.
    pub fn output(&self) -> String {
        let mut all = self.stdout.snapshot();
        all.extend(self.stderr.snapshot());
        all.join("\n")
    }

    /// Waits for a stdout line containing every one of `parts`; returns the line.
    pub fn wait_for_line(&self, parts: &[&str]) -> String {
        self.wait_for_line_after(0, parts).1
    }

    /// Like [`Self::wait_for_line`], but only among lines after the first `skip`;
    /// returns the line's index too, to wait for a later one.
    pub fn wait_for_line_after(&self, skip: usize, parts: &[&str]) -> (usize, String) {
        self.wait_for_line_within(PATIENCE, skip, parts)
    }

    /// Like [`Self::wait_for_line_after`], waiting up to `patience`.
    pub fn wait_for_line_within(
        &self,
        patience: Duration,
        skip: usize,
        parts: &[&str],
    ) -> (usize, String) {
        let wanted = |line: &str| parts.iter().all(|part| line.contains(part));
        match self.stdout.wait_for(skip, &wanted, patience) {
            Some(index) => (index, self.stdout.snapshot()[index].clone()),
            None => panic!(
                "no line with {parts:?} within {patience:?}; output:\n{}",
                self.output()
            ),
        }
    }

    /// How many lines the worker has written to stdout so far.
    pub fn line_count(&self) -> usize {
        self.stdout.snapshot().len()
    }

    /// Waits until the worker logs `Contador atual: {count}`.
    pub fn wait_for_count(&self, count: i64) -> String {
        self.wait_for_line(&[&format!("Contador atual: {count} ")])
    }

    /// The counts logged so far, in order.
    pub fn counts(&self) -> Vec<i64> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|line| logged_count(line))
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("poll counter-worker")
            .is_none()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the worker.
    pub fn signal(&self, signal: libc::c_int) {
        send_signal(self.child.id(), signal);
    }

    /// Stops the starting worker (SIGSTOP) at a moment when it blocks SIGTERM and has no
    /// handler for it yet, stepping through its start a few dozen microseconds at a time;
    /// false, with the worker running on, once its handler is installed with no such
    /// moment seen.
    pub fn stop_before_its_handlers(&self) -> bool {
        let term = 1u64 << (libc::SIGTERM - 1);
        loop {
            self.signal(libc::SIGSTOP);
            let (blocked, caught) = self.stopped_signal_masks();
            if blocked & term != 0 && caught & term == 0 {
                return true;
            }
            self.signal(libc::SIGCONT);
            if caught & term != 0 {
                return false;
            }
            thread::sleep(Duration::from_micros(20));
        }
    }

    /// The signals the stopped worker blocks and those it catches, from `/proc`, once
    /// the kernel shows it stopped.
    fn stopped_signal_masks(&self) -> (u64, u64) {
        let status = format!("/proc/{}/status", self.child.id());
        loop {
            let text = std::fs::read_to_string(&status).expect("read the worker's status");
            let field = |name: &str| {
                let line = text.lines().find_map(|line| line.strip_prefix(name));
                let hex = line.unwrap_or_else(|| panic!("{name} in {status}")).trim();
                u64::from_str_radix(hex, 16).expect("a hex signal mask")
            };
            assert!(
                !text.contains("State:\tZ"),
                "the worker exited while starting"
            );
            if text.contains("State:\tT") {
                return (field("SigBlk:"), field("SigCgt:"));
            }
        }
    }

    /// Waits for the worker to exit, failing the test after [`PATIENCE`].
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        self.wait_for_exit_within(PATIENCE)
    }

    /// Waits for the worker to exit, failing the test after `patience`. Its output has
    /// then been read to the end: the lines it wrote last are in [`Self::output`].
    pub fn wait_for_exit_within(&mut self, patience: Duration) -> ExitStatus {
        if let Some(status) = wait_within(&mut self.child, patience) {
            let read = self.stdout.wait_for_end(PATIENCE) && self.stderr.wait_for_end(PATIENCE);
            assert!(read, "counter-worker exited but its output did not end");
            return status;
        }
        panic!(
            "counter-worker still running after {patience:?}; output:\n{}",
            self.output()
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `N` of a `Contador atual: N` text log line.
pub fn logged_count(line: &str) -> Option<i64> {
    let (_, rest) = line.split_once("Contador atual: ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The `N` of each `restored=N` in `output`'s warnings that Redis had lost counts the
/// worker logged, in order.
pub fn restored_counts(output: &str) -> Vec<u64> {
    output
        .lines()
        .filter(|line| line.contains("Redis had lost"))
        .filter_map(|line| {
            line.split(" restored=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// A file holding `contents`, kept alive as long as the returned handle.
pub fn file_with(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), contents).expect("write temp file");
    file
}

/// The path of `file` as the `&str` an environment variable needs.
pub fn path_str(file: &Path) -> &str {
    file.to_str().expect("temp paths are UTF-8")
}

/// A TCP server that accepts connections and never answers: a black-holed Redis.
pub struct SilentServer {
    port: u16,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        thread::spawn(move || {
            // Keep accepted sockets open, and silent, for the life of the test process.
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }
}
