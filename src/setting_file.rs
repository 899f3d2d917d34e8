//! Files that a setting names (a Docker or Kubernetes secret holding a password, a TLS
//! certificate or key): read once, at start, by one set of rules, so that a file the
//! worker cannot use is refused before anything runs, for a reason that is a variant.
//!
//! Such a path comes from outside, so reading it must not hang or read without end: the
//! file is opened non-blocking (a FIFO cannot stall the start), only a regular file is
//! read (after symlinks, as secrets are mounted), and only up to a bound.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest password file read; a secret is a line, not a document.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

/// Why a file a setting names cannot be used; `Display` is the reason a person reads
/// after the setting's name and path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be opened or read.
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    /// It is a directory, a FIFO, a device: not a regular file.
    #[error("not a regular file")]
    NotRegular,
    /// It holds more than `limit` bytes; it should hold `holds` ("one password").
    #[error("larger than {limit} bytes; it should hold {holds}")]
    TooLarge {
        /// The bound, in bytes.
        limit: u64,
        /// What the file is for.
        holds: &'static str,
    },
    /// A password file whose bytes are not UTF-8 text.
    #[error("the file is not UTF-8 text")]
    NotText,
    /// A password file with nothing in it but a line end.
    #[error("the file is empty")]
    Empty,
}

/// The bytes of the regular file at `path`, at most `limit` of them. `holds` says what the
/// file is for ("one password"), for the error when it is larger.
pub fn read(path: &Path, limit: u64, holds: &'static str) -> Result<Vec<u8>, FileError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(FileError::Unreadable)?;
    if !file.metadata().map_err(FileError::Unreadable)?.is_file() {
        return Err(FileError::NotRegular);
    }
    // One byte more than allowed tells a file that is too large, whatever its size says.
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit, holds });
    }
    Ok(bytes)
}

/// The password in the file at `path`, a trailing newline dropped; none for an empty path.
pub fn read_password(path: &str) -> Result<Option<String>, FileError> {
    if path.is_empty() {
        return Ok(None);
    }
    let bytes = read(Path::new(path), MAX_PASSWORD_FILE_BYTES, "one password")?;
    let text = String::from_utf8(bytes).map_err(|_| FileError::NotText)?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(FileError::Empty);
    }
    Ok(Some(password.to_owned()))
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
        let too_large = read(&link, 4, "four bytes").unwrap_err();
        assert!(matches!(too_large, FileError::TooLarge { limit: 4, .. }));
        assert_eq!(
            too_large.to_string(),
            "larger than 4 bytes; it should hold four bytes"
        );
        let directory = read(dir.path(), 5, "").unwrap_err();
        assert!(matches!(directory, FileError::NotRegular), "{directory}");
        let absent = read(&dir.path().join("absent"), 5, "").unwrap_err();
        assert!(matches!(absent, FileError::Unreadable(_)), "{absent}");
    }
}
