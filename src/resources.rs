//! The one resource the worker needs a few of, checked before it starts: file
//! descriptors.
//!
//! With too few (`ulimit -n` set very low), every connection attempt would fail with
//! "Too many open files" and the worker would retry forever, looking alive while it can
//! never count. Failing at start with one line says what to fix.

/// Descriptors that must still be free once the runtime and logging are up: a Redis
/// connection, its replacement while the old one closes, and the health state file.
pub const SPARE_DESCRIPTORS_NEEDED: u64 = 3;

/// `Ok` when at least `SPARE_DESCRIPTORS_NEEDED` more descriptors can be opened;
/// otherwise the reason, for one line.
///
/// It opens that many (on `/`, which exists in every container) and closes them again:
/// counting descriptors would miss how the kernel hands out the lowest free number.
pub fn check_descriptor_headroom() -> Result<(), TooFewDescriptors> {
    let mut probes = Vec::new();
    for _ in 0..SPARE_DESCRIPTORS_NEEDED {
        match std::fs::File::open("/") {
            Ok(probe) => probes.push(probe),
            Err(err) if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                return Err(TooFewDescriptors {
                    err,
                    limit: descriptor_limit(),
                });
            }
            // Any other failure says nothing about descriptors.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// No descriptor to spare: the error opening one, and `ulimit -n` if it can be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "too few file descriptors ({err}; ulimit -n is {}); raise the limit",
    .limit.map_or("unknown".to_owned(), |n| n.to_string())
)]
pub struct TooFewDescriptors {
    err: std::io::Error,
    limit: Option<u64>,
}

fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to a valid pointer.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    (status == 0).then_some(limit.rlim_cur)
}
