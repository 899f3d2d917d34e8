//! Files that a setting names (a Docker or Kubernetes secret holding a password): read
//! once, at start, so that a file the worker cannot use is refused before anything runs.
//!
//! Such a path comes from outside, so reading it must not hang or read without end: the
//! file is opened non-blocking (a FIFO cannot stall the start), only a regular file is
//! read (after symlinks, as secrets are mounted), and only up to a bound.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bytes of the regular file at `path`, at most `limit` of them; the error is a
/// reason for a person. `holds` says what the file is for ("one password"), for the
/// error when it is larger.
pub fn read(path: &Path, limit: u64, holds: &str) -> Result<Vec<u8>, String> {
    let cannot_read = |err: std::io::Error| format!("cannot read it: {err}");
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot_read)?;
    if !file.metadata().map_err(cannot_read)?.is_file() {
        return Err("not a regular file".to_owned());
    }
    // One byte more than allowed tells a file that is too large, whatever its size says.
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes; it should hold {holds}"));
    }
    Ok(bytes)
}
