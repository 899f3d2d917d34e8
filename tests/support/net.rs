//! Network stand-ins that a test controls: a listener that counts the connections it is
//! offered, and a proxy that holds every reply of Redis back for a while.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::loopback_url;

/// A port that accepts every connection, counts it and closes it at once: a Redis that
/// is down behind a load balancer. The count is of real TCP connections, whatever the
/// worker logs about them.
pub struct CountingListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        Self { port, accepted }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A TCP proxy to the Redis on `upstream` that passes requests on at once and holds every
/// chunk of reply for `delay`: a Redis that answers slowly, while executing each command
/// at the moment it arrives (so `MONITOR` shows when it was sent).
pub struct SlowReplies {
    port: u16,
}

impl SlowReplies {
    pub fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                thread::spawn(move || pass(client_in, server_out, Duration::ZERO));
                thread::spawn(move || pass(server, client, delay));
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read, until either end closes.
fn pass(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        thread::sleep(delay);
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
