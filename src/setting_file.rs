//! Files that a setting names (a Docker or Kubernetes secret holding a password, a TLS
//! certificate or key): read once, at start, by one set of rules, so that a file the
//! worker cannot use is refused before anything runs.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_through_a_symlink_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "12345").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, 5, "five bytes").unwrap(), b"12345");
        assert_eq!(
            read(&link, 4, "four bytes").unwrap_err(),
            "larger than 4 bytes; it should hold four bytes"
        );
        assert_eq!(read(dir.path(), 5, "").unwrap_err(), "not a regular file");
        assert!(
            read(&dir.path().join("absent"), 5, "")
                .unwrap_err()
                .starts_with("cannot read it")
        );
    }
}
