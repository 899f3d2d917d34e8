//! Redis's own view of what the worker sends: a `MONITOR` connection whose lines are
//! parsed as they arrive, with Redis's timestamp and the client's address.
//!
//! A test that checks the order of commands (a `PING` before the next `INCR`), which
//! connection sent them, or how far apart two `INCR`s were executed asks Redis, not the
//! worker's log: the log says what the worker meant to do, `MONITOR` what it did.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::PATIENCE;

/// The name tests use for the command that carries a tick, whatever it is: the script
/// (`EVALSHA`, or `EVAL` when Redis has not cached it) counting exactly once, `INCR` at most
/// once; never a command the script itself runs (client `lua`).
pub const TICK: &str = "TICK";

/// One command as `MONITOR` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Redis's clock when it executed the command, in seconds.
    pub at: f64,
    /// The client's address, `ip:port`: one address, one connection.
    pub client: String,
    /// The command's name, upper case (`INCR`, `PING`, `HELLO`).
    pub command: String,
    /// The arguments after the name.
    pub args: Vec<String>,
}

impl Seen {
    /// True when this is the command `name` ([`TICK`] for any command carrying a tick).
    pub fn is(&self, name: &str) -> bool {
        if name == TICK {
            let tick = matches!(self.command.as_str(), "EVALSHA" | "EVAL" | "INCR");
            return tick && self.client != "lua";
        }
        self.command == name
    }

    fn parse(line: &str) -> Option<Self> {
        // +1700000000.123456 [0 127.0.0.1:54321] "INCR" "contador"
        let rest = line.strip_prefix('+')?;
        let (at, rest) = rest.split_once(' ')?;
        let at: f64 = at.parse().ok()?;
        let rest = rest.strip_prefix('[')?;
        let (source, rest) = rest.split_once("] ")?;
        let (_db, client) = source.split_once(' ')?;
        let mut words = quoted_words(rest).into_iter();
        let command = words.next()?.to_uppercase();
        Some(Self {
            at,
            client: client.to_owned(),
            command,
            args: words.collect(),
        })
    }
}

/// The words of a `MONITOR` line, each in double quotes with backslash escapes.
fn quoted_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => word.extend(chars.next()),
                other => word.push(other),
            }
        }
        words.push(word);
    }
    words
}

/// A `MONITOR` connection to one Redis; it watches until dropped.
pub struct Monitor {
    seen: Arc<(Mutex<Vec<Seen>>, Condvar)>,
    stream: TcpStream,
}

impl Monitor {
    /// Starts watching the Redis on `port` (after `AUTH password`, if given); returns
    /// once Redis has confirmed, so every later command is seen.
    pub fn start(port: u16, password: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect for MONITOR");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut confirm = |request: &str| {
            stream.write_all(request.as_bytes()).expect("send");
            let mut reply = String::new();
            reader.read_line(&mut reply).expect("Redis answers");
            assert_eq!(reply.trim_end(), "+OK", "{request:?} answered {reply:?}");
        };
        if let Some(password) = password {
            confirm(&format!("AUTH {password}\r\n"));
        }
        confirm("MONITOR\r\n");
        // From here on the stream may stay silent for long (a frozen Redis).
        stream.set_read_timeout(None).expect("no read timeout");
        let seen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(command) = Seen::parse(&line) {
                    let (list, arrived) = &*sink;
                    list.lock().unwrap().push(command);
                    arrived.notify_all();
                }
            }
        });
        Self { seen, stream }
    }

    /// Every command seen so far, in the order Redis executed them.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.0.lock().unwrap().clone()
    }

    /// The commands named `command` seen so far.
    pub fn named(&self, command: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.is(command))
            .collect()
    }

    /// Waits until at least `count` commands named `command` were seen, at most
    /// `patience`; returns them all.
    pub fn wait_for(&self, command: &str, count: usize, patience: Duration) -> Vec<Seen> {
        let named = |seen: &[Seen]| -> Vec<Seen> {
            seen.iter()
                .filter(|seen| seen.is(command))
                .cloned()
                .collect()
        };
        let what = format!("{count} {command}");
        named(&self.wait_until(&what, patience, |seen| named(seen).len() >= count))
    }

    /// Waits until what was seen satisfies `done`, at most `patience`; returns all of it.
    pub fn wait_until(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let (list, arrived) = &*self.seen;
        let deadline = Instant::now() + patience;
        let mut list = list.lock().unwrap();
        loop {
            if done(&list) {
                return list.clone();
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!(
                    "Redis did not see {what} within {patience:?}; it saw:\n{:#?}",
                    *list
                );
            };
            list = arrived.wait_timeout(list, left).unwrap().0;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[test]
fn monitor_lines_are_parsed_with_their_client_and_escapes() {
    let seen = Seen::parse(r#"+1700000000.250000 [3 127.0.0.1:54321] "incr" "a \"b\"\\c""#)
        .expect("a MONITOR line");
    assert_eq!(seen.at, 1_700_000_000.25);
    assert_eq!(seen.client, "127.0.0.1:54321");
    assert_eq!(seen.command, "INCR");
    assert_eq!(seen.args, [r#"a "b"\c"#]);
    assert_eq!(Seen::parse("+OK"), None);
}
