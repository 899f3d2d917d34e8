//! Reading a secret or a certificate from a file that an environment variable names
//! (`REDIS_PASSWORD_FILE`, `REDIS_TLS_CA_FILE`, …), with one set of rules for all of them.
//!
//! Such files come from Docker and Kubernetes secrets, which are symlinks to regular files.
//! A FIFO, a device or a huge file put there by mistake must not hang or swamp the start,
//! so the file is opened without blocking, must be a regular file after symlinks, and is
//! read only up to a bound.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bytes of the regular file at `path`, at most `max_bytes` of them; the error is a
/// reason for a person, without the path (the caller names the setting and shows it).
pub fn read(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
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
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
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
        assert_eq!(read(&link, 5).unwrap(), b"12345");
        assert_eq!(read(&link, 4).unwrap_err(), "larger than 4 bytes");
        assert_eq!(read(dir.path(), 5).unwrap_err(), "not a regular file");
        assert!(
            read(&dir.path().join("absent"), 5)
                .unwrap_err()
                .starts_with("cannot read it")
        );
    }
}
