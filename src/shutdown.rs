//! Turning SIGTERM, SIGINT and SIGHUP into a [`CancellationToken`] that the rest of the
//! program watches.
//!
//! The handlers are installed explicitly: as PID 1 in a container, a process that has no
//! handler for SIGTERM never receives it, and `docker stop` waits ten seconds before
//! killing it. SIGHUP (a closed terminal, a supervisor's "stop") would otherwise kill
//! the worker without its final line.

use std::io;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Installs the SIGTERM, SIGINT and SIGHUP handlers now, so no signal is missed from
/// here on, and cancels `shutdown` when the first one arrives.
///
/// The task's result names the signal, for the final log line.
pub fn cancel_on_signal(shutdown: CancellationToken) -> io::Result<JoinHandle<&'static str>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
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
