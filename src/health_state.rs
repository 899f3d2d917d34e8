//! What the health check reads: a tiny file in which the running worker records when it
//! last tried a tick and when it last counted.
//!
//! `counter-worker healthcheck` runs as a separate process (the container engine execs
//! it beside the worker), so "is this worker still counting?" must cross a process
//! boundary. The container's root stays read-only: the file lives in a tmpfs (Compose,
//! Swarm) or an `emptyDir` (Kubernetes) mounted at `/run/counter-worker`.
//!
//! The worker holds an exclusive `flock` on the file for as long as it lives, so a
//! file left behind by a killed worker is recognised as stale: the kernel drops the lock
//! with the process. The record has a fixed size and is rewritten in place, so a full
//! filesystem cannot fail a write after start. Times are `CLOCK_BOOTTIME` milliseconds,
//! shared by every process on the machine and blind to wall-clock steps.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAGIC: &str = "counter-worker-health-v1";

/// Milliseconds since boot, as every process on this machine sees them.
pub fn boot_clock_millis() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut now) };
    debug_assert_eq!(status, 0, "CLOCK_BOOTTIME exists on every supported kernel");
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds * 1_000 + nanos / 1_000_000
}

/// One snapshot of a worker's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The worker's tick interval, which sets what "late" means.
    pub interval: Duration,
    /// When the worker started.
    pub started_ms: u64,
    /// When it last began a tick (a connection attempt or an `INCR`).
    pub last_attempt_ms: u64,
    /// When an `INCR` last succeeded; 0 when none has yet.
    pub last_success_ms: u64,
}

impl Progress {
    fn encode(&self) -> String {
        // Fixed widths: every record has the same length, so rewriting it in place never
        // leaves a longer record's tail behind.
        format!(
            "{MAGIC} {:>20} {:>20} {:>20} {:>20}\n",
            self.interval.as_millis(),
            self.started_ms,
            self.last_attempt_ms,
            self.last_success_ms
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        if fields.next()? != MAGIC {
            return None;
        }
        let mut number = || fields.next()?.parse::<u64>().ok();
        Some(Self {
            interval: Duration::from_millis(number()?),
            started_ms: number()?,
            last_attempt_ms: number()?,
            last_success_ms: number()?,
        })
    }
}

/// The worker's side: the locked file and the progress it records.
#[derive(Debug)]
pub struct HealthRecorder {
    file: File,
    progress: Progress,
    failed: bool,
}

impl HealthRecorder {
    /// Creates (or takes over a stale) state file at `path` and locks it for the life of
    /// the process. The error says why the health check will fall back to a PING.
    pub fn create(path: &Path, interval: Duration) -> Result<Self, StateError> {
        let failed = |what| move |err| StateError::Io(what, path.to_owned(), err);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(failed("open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StateError::Held(path.to_owned())),
            Err(TryLockError::Error(err)) => return Err(failed("lock")(err)),
        }
        let now = boot_clock_millis();
        let recorder = Self {
            file,
            progress: Progress {
                interval,
                started_ms: now,
                last_attempt_ms: now,
                last_success_ms: 0,
            },
            failed: false,
        };
        let record_len = recorder.progress.encode().len() as u64;
        recorder
            .file
            .set_len(record_len)
            .and_then(|()| recorder.write())
            .map_err(failed("write"))?;
        Ok(recorder)
    }

    /// Records the start of a tick.
    pub fn attempted(&mut self) -> Option<io::Error> {
        self.progress.last_attempt_ms = boot_clock_millis();
        self.write_once()
    }

    /// Records a successful `INCR`.
    pub fn succeeded(&mut self) -> Option<io::Error> {
        self.progress.last_success_ms = boot_clock_millis();
        self.write_once()
    }

    /// Writes the record; the first failure is returned (for one log line), later ones
    /// are not, until a write succeeds again.
    fn write_once(&mut self) -> Option<io::Error> {
        match self.write() {
            Ok(()) => {
                self.failed = false;
                None
            }
            Err(err) if !self.failed => {
                self.failed = true;
                Some(err)
            }
            Err(_) => None,
        }
    }

    fn write(&self) -> io::Result<()> {
        self.file.write_all_at(self.progress.encode().as_bytes(), 0)
    }
}

/// What the health check found at the state file's path.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    /// A live worker holds the file; this is its latest progress.
    LiveWorker(Progress),
    /// No file, or one that no live process holds (a stale record of a killed worker).
    NoLiveWorker,
}

/// Reads the state file at `path`, as the health check does.
pub fn observe(path: &Path) -> Result<Observed, StateError> {
    let failed = |what| move |err| StateError::Io(what, path.to_owned(), err);
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Observed::NoLiveWorker),
        Err(err) => return Err(failed("open")(err)),
    };
    match file.try_lock_shared() {
        // We could lock it, so nobody holds it: whoever wrote it is gone.
        Ok(()) => return Ok(Observed::NoLiveWorker),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(err)) => return Err(failed("lock")(err)),
    }
    // The worker rewrites the record in place; two equal reads in a row are a whole one.
    let mut previous = None;
    for _ in 0..5 {
        let mut record = [0; 256];
        let len = file.read_at(&mut record, 0).map_err(failed("read"))?;
        let current = std::str::from_utf8(&record[..len])
            .ok()
            .and_then(Progress::decode);
        if let Some(progress) = current
            && previous == current
        {
            return Ok(Observed::LiveWorker(progress));
        }
        previous = current;
    }
    Err(StateError::NoRecord(path.to_owned()))
}

/// Why the state file cannot be used; `Display` says so in one line.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Opening, locking, reading or writing it (the verb) failed.
    #[error("cannot {0} {path}: {2}", path = .1.display())]
    Io(&'static str, PathBuf, io::Error),
    /// Another live worker holds it.
    #[error("another running worker already records its health in {}", .0.display())]
    Held(PathBuf),
    /// A live worker holds it, but no two reads in a row gave the same whole record.
    #[error("{} holds no readable record", .0.display())]
    NoRecord(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_have_a_fixed_length() {
        let small = Progress {
            interval: Duration::from_millis(1),
            started_ms: 1,
            last_attempt_ms: 2,
            last_success_ms: 0,
        };
        let large = Progress {
            interval: Duration::from_secs(86_400),
            started_ms: u64::MAX,
            last_attempt_ms: u64::MAX,
            last_success_ms: u64::MAX,
        };
        assert_eq!(small.encode().len(), large.encode().len());
        assert_eq!(Progress::decode(&small.encode()), Some(small));
        assert_eq!(Progress::decode(&large.encode()), Some(large));
        assert_eq!(Progress::decode("something else 1 2 3 4"), None);
    }

    #[test]
    fn a_live_recorder_is_seen_and_a_released_one_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health");
        assert!(matches!(observe(&path), Ok(Observed::NoLiveWorker)));
        let mut recorder = HealthRecorder::create(&path, Duration::from_secs(2)).unwrap();
        assert!(recorder.succeeded().is_none());
        match observe(&path) {
            Ok(Observed::LiveWorker(progress)) => {
                assert_eq!(progress.interval, Duration::from_secs(2));
                assert!(progress.last_success_ms >= progress.started_ms);
            }
            other => panic!("expected a live worker, got {other:?}"),
        }
        let second = HealthRecorder::create(&path, Duration::from_secs(2));
        assert!(matches!(second, Err(StateError::Held(_))));
        drop(recorder);
        assert!(
            matches!(observe(&path), Ok(Observed::NoLiveWorker)),
            "the lock died with it"
        );
    }

    /// A file whose writes start failing after it was made (a full or read-only disk): the
    /// first failure is reported, its repeats are not, and once a write succeeds again the
    /// next failure is reported anew. The failing file is the same file opened read-only,
    /// whose writes the kernel refuses.
    #[test]
    fn a_failing_write_is_reported_once_until_a_write_succeeds_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("health");
        let mut recorder = HealthRecorder::create(&path, Duration::from_secs(2)).unwrap();
        let writable = recorder.file.try_clone().unwrap();
        let fail_writes = |recorder: &mut HealthRecorder| {
            recorder.file = File::open(&path).unwrap();
        };

        fail_writes(&mut recorder);
        assert!(
            recorder.attempted().is_some(),
            "the first failure is reported"
        );
        assert!(recorder.succeeded().is_none(), "a repeat is not");
        assert!(recorder.attempted().is_none(), "nor the next");

        recorder.file = writable;
        assert!(recorder.succeeded().is_none(), "a write that succeeds");
        assert!(matches!(observe(&path), Ok(Observed::LiveWorker(_))));

        fail_writes(&mut recorder);
        assert!(
            recorder.attempted().is_some(),
            "a failure after a success is new"
        );
    }
}
