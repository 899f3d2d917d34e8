//! Turning SIGTERM, SIGINT and SIGHUP into a [`CancellationToken`] that the rest of the
//! program watches.
//!
//! The handlers are installed explicitly: as PID 1 in a container, a process that has no
//! handler for SIGTERM never receives it, and `docker stop` waits ten seconds before
//! killing it. SIGHUP (a closed terminal, a supervisor's "stop") would otherwise kill
//! the worker without its final line. Until they are installed, the signals are held
//! ([`HeldSignals`]), so that one sent at the start waits for its handler.

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// SIGTERM, SIGINT and SIGHUP blocked, from the first line of `main` until this is
/// dropped: a signal sent meanwhile stays pending, instead of killing the process without
/// its final line or, sent to a PID 1 without a handler, being discarded.
///
/// Between the start and the handlers lie the settings (a CA bundle among them) and the
/// set-up: a `docker stop` that lands there would otherwise wait its ten seconds for
/// nothing. Threads started while it is held keep the signals blocked; they reach the
/// thread that drops it, once it has installed the handlers. It cannot leave that thread
/// (not `Send`): dropped on another, it would leave the signals blocked everywhere.
pub struct HeldSignals(Option<libc::sigset_t>, PhantomData<*const ()>);

impl HeldSignals {
    /// Blocks the three signals on the calling thread; holds nothing if the system
    /// refuses, which leaves them as they were.
    pub fn hold() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is initialised by sigemptyset before any other use; the calls
        // only read and write that set and this thread's signal mask.
        let held = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(set.as_mut_ptr(), signal);
            }
            let set = set.assume_init();
            (libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) == 0)
                .then_some(set)
        };
        Self(held, PhantomData)
    }
}

impl Drop for HeldSignals {
    /// Lets the signals through: one that is pending is delivered now.
    fn drop(&mut self) {
        if let Some(set) = self.0 {
            // SAFETY: unblocks exactly the signals `hold` blocked, on this thread.
            unsafe {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut())
            };
        }
    }
}

/// Installs the SIGTERM, SIGINT and SIGHUP handlers now, then lets the `held` signals
/// through, so none is missed from the start, and cancels `shutdown` when the first one
/// arrives.
///
/// The task's result names the signal, for the final log line.
pub fn cancel_on_signal(
    shutdown: CancellationToken,
    held: HeldSignals,
) -> io::Result<JoinHandle<&'static str>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    drop(held);
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            _ = hangup.recv() => "SIGHUP",
        };
        shutdown.cancel();
        name
    }))
}
