//! Log output that can never stop the worker: human-readable lines or one JSON object per
//! line, on standard output, through a bounded queue that a thread of its own drains.
//!
//! A reader that stops reading (a stalled log driver, a full pipe) would block a plain
//! `write` on the only runtime thread: no more `INCR`, and no reaction to SIGTERM. Here
//! the runtime only ever *tries* to queue a line; when the queue is full the line is
//! dropped and counted, never the count itself. Once output flows again the writer
//! thread reports how many lines were lost, and the final line carries the total.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use tracing::warn;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines the queue holds before new ones are dropped: about a minute of output at the
/// fastest interval, and a few hundred kilobytes at most.
pub const QUEUED_LINES: usize = 1024;

/// How long the final flush waits for a stalled reader before the process exits anyway.
pub const FINAL_FLUSH_PATIENCE: Duration = Duration::from_millis(300);

/// How log lines are written: for people (`text`) or for log pipelines (`json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// The handle the program keeps to the log output: how many lines were lost, and the
/// flush at exit.
#[derive(Clone)]
pub struct LogOutput {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it has been written.
    Flush(SyncSender<()>),
}

impl LogOutput {
    /// Log lines dropped so far because standard output was not being read.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything logged so far is written, at most `patience`; false when
    /// the reader is stalled and lines are still queued.
    pub fn flush(&self, patience: Duration) -> bool {
        let (done, written) = mpsc::sync_channel(1);
        if self.queue.try_send(Message::Flush(done)).is_err() {
            return false;
        }
        written.recv_timeout(patience).is_ok()
    }

    fn queue_line(&self, line: Vec<u8>) {
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One formatted event; queued as a whole when tracing is done writing it.
pub struct QueuedLine<'a> {
    output: &'a LogOutput,
    line: Vec<u8>,
}

impl Write for QueuedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.output.queue_line(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueuedLine {
            output: self,
            line: Vec::new(),
        }
    }
}

/// Starts the writer thread and installs the global subscriber; call once, before
/// anything is logged. Fails only when the thread cannot be started (no resources).
pub fn init(format: LogFormat, filter: Targets) -> io::Result<LogOutput> {
    let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
    let output = LogOutput {
        queue,
        dropped: Arc::default(),
    };
    let dropped = Arc::clone(&output.dropped);
    thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || write_lines(&lines, &dropped))?;
    // The builder's own level filter lets everything through: `filter` decides.
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(output.clone());
    match format {
        LogFormat::Text => builder
            .with_ansi(io::stdout().is_terminal())
            .finish()
            .with(filter)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .init(),
    }
    Ok(output)
}

/// The writer thread: the only place that blocks on standard output.
fn write_lines(lines: &Receiver<Message>, dropped: &AtomicU64) {
    let mut stdout = io::stdout().lock();
    let mut reported = 0;
    for message in lines {
        match message {
            Message::Line(line) => {
                if stdout
                    .write_all(&line)
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Output flows: say what was lost while it did not. The report goes
                // through the queue like any line, so a full queue drops it and it is
                // tried again after the next line that gets through.
                let now = dropped.load(Ordering::Relaxed);
                if now > reported {
                    warn!(
                        dropped_lines = now - reported,
                        "standard output was not read: {} log lines dropped",
                        now - reported
                    );
                    reported = now;
                }
            }
            Message::Flush(done) => {
                let _ = stdout.flush();
                let _ = done.send(());
            }
        }
    }
}

/// Why a `RUST_LOG` value is refused.
#[derive(Debug)]
pub enum FilterError {
    /// A span or field directive (`target[span{field}]=level`), which this binary cannot
    /// honour: it has no spans.
    SpanOrField(String),
    /// A directive that does not start as `target=level` does.
    NotTargetLevel(String),
    /// What tracing-subscriber's own parser refused.
    Targets(tracing_subscriber::filter::ParseError),
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a log filter (")?;
        match self {
            Self::SpanOrField(directive) => write!(
                f,
                "{directive:?}: span and field directives are not supported"
            )?,
            Self::NotTargetLevel(directive) => write!(f, "{directive:?} is not target=level")?,
            Self::Targets(err) => write!(f, "{err}")?,
        }
        f.write_str("); try info or counter_worker=debug,redis=warn")
    }
}

impl std::error::Error for FilterError {}

/// `RUST_LOG` in the form `EnvFilter` reads for targets and levels (`info`,
/// `counter_worker=debug,redis=warn`; a bare target logs everything from it, `target=`
/// too); empty directives are skipped, as `EnvFilter` does, so `info,` is `info`.
/// Targets not named log at `info` unless a bare level says otherwise.
///
/// Span and field directives (`target[span{field}]=level`) are refused: this binary has no
/// spans, and a filter that cannot be honoured must not start the worker silently.
pub fn parse_filter(raw: &str) -> Result<Targets, FilterError> {
    let mut directives = Vec::new();
    for directive in raw.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains(['[', ']', '{', '}']) {
            return Err(FilterError::SpanOrField(directive.to_owned()));
        }
        // EnvFilter's rule for the first character of a directive.
        if directive.starts_with(|c: char| !c.is_alphanumeric() && !"-:_".contains(c)) {
            return Err(FilterError::NotTargetLevel(directive.to_owned()));
        }
        match directive.strip_suffix('=') {
            Some(target) => directives.push(format!("{target}=trace")),
            None => directives.push(directive.to_owned()),
        }
    }
    if directives.is_empty() {
        return Ok(Targets::new().with_default(LevelFilter::INFO));
    }
    let targets: Targets = directives.join(",").parse().map_err(FilterError::Targets)?;
    Ok(match targets.default_level() {
        Some(_) => targets,
        None => targets.with_default(LevelFilter::INFO),
    })
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn accepts_common_log_filters() {
        for filter in ["", "info", "debug", "counter_worker=debug,redis=warn"] {
            assert!(parse_filter(filter).is_ok(), "{filter:?}");
        }
    }

    #[test]
    fn empty_directives_are_skipped_as_env_filter_skips_them() {
        for filter in ["info,", "info,,", ",info", " info , "] {
            let targets = parse_filter(filter).unwrap();
            assert_eq!(
                targets.default_level(),
                Some(LevelFilter::INFO),
                "{filter:?}"
            );
            assert!(
                targets.would_enable("counter_worker", &Level::INFO),
                "{filter:?}"
            );
        }
        let targets = parse_filter("warn,,counter_worker=debug,").unwrap();
        assert!(targets.would_enable("counter_worker::worker", &Level::DEBUG));
        assert!(!targets.would_enable("redis", &Level::INFO));
    }

    #[test]
    fn bare_targets_and_empty_levels_log_everything_from_that_target() {
        for filter in ["counter_worker", "counter_worker="] {
            let targets = parse_filter(filter).unwrap();
            assert!(
                targets.would_enable("counter_worker", &Level::TRACE),
                "{filter:?}"
            );
            assert!(!targets.would_enable("redis", &Level::DEBUG), "{filter:?}");
        }
    }

    #[test]
    fn span_and_field_directives_and_garbage_are_refused() {
        for (filter, span_or_field) in [
            ("counter_worker[span]=debug", true),
            ("counter_worker[{key}]=debug", true),
            ("[span]=info", true),
            ("garbage[[[", true),
            ("info,=debug", false),
            ("a=b=c", false),
            ("counter_worker=loud", false),
        ] {
            let reason = parse_filter(filter).unwrap_err();
            assert_eq!(
                matches!(reason, FilterError::SpanOrField(_)),
                span_or_field,
                "{filter:?}: {reason}"
            );
            assert!(
                reason.to_string().starts_with("not a log filter ("),
                "{filter:?}: {reason}"
            );
        }
    }
}
