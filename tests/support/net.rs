//! Network stand-ins that a test controls: a listener that counts the connections it is
//! offered, a proxy that holds every reply of Redis back for a while, one whose idle
//! timer fires just as a request arrives, one that loses replies on demand, and one that
//! a network partition can cut.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
        let port = proxy(upstream, move |requests, replies| {
            thread::spawn(move || relay(requests, || true, || {}));
            let held = move || {
                thread::sleep(delay);
                true
            };
            thread::spawn(move || relay(replies, held, || {}));
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }
}

/// One direction of a proxied connection: read from the first, write to the second.
type Direction = (TcpStream, TcpStream);

/// Listens on a port of its own and connects each client to the Redis on `upstream`;
/// `wire` gets the two directions (requests, replies) to relay. Returns the port.
fn proxy(upstream: u16, wire: impl Fn(Direction, Direction) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            wire((client_in, server_out), (server, client));
        }
    });
    port
}

/// Copies `from` to `to` chunk by chunk until either end closes, or until `before` (asked
/// before each chunk is written) says no; `after` runs once a chunk is written.
fn relay((mut from, mut to): Direction, mut before: impl FnMut() -> bool, mut after: impl FnMut()) {
    let mut buffer = [0; 16 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer) {
        if !before() || to.write_all(&buffer[..read]).is_err() {
            break;
        }
        after();
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A TCP proxy to the Redis on `upstream` with an idle timer that is checked only when
/// the client sends: a request on a connection idle for `idle` or longer is dropped, not
/// passed on, and the connection closed. The timer always fires as the tick begins, which
/// a real idle timer (Redis's `timeout`, a load balancer's) does only now and then.
pub struct IdleCutoff {
    port: u16,
    cut: Arc<AtomicUsize>,
}

impl IdleCutoff {
    pub fn start(upstream: u16, idle: Duration) -> Self {
        let cut = Arc::new(AtomicUsize::new(0));
        let cuts = Arc::clone(&cut);
        let port = proxy(upstream, move |requests, replies| {
            let last_reply = Arc::new(Mutex::new(Instant::now()));
            let replied = Arc::clone(&last_reply);
            let cuts = Arc::clone(&cuts);
            let awake = move || {
                let idle_for = last_reply.lock().unwrap().elapsed();
                if idle_for >= idle {
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
                idle_for < idle
            };
            thread::spawn(move || relay(requests, awake, || {}));
            let noted = move || *replied.lock().unwrap() = Instant::now();
            thread::spawn(move || relay(replies, || true, noted));
        });
        Self { port, cut }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }

    /// Connections closed so far because a request came after `idle`.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

/// A TCP proxy to the Redis on `upstream` that loses replies on demand: once
/// [`LostReplies::lose_replies`] is called, each connection open at that moment drops the
/// next reply Redis sends it and is closed, while the command was executed. A reply lost on
/// the way back, the case a resend must not count twice.
pub struct LostReplies {
    port: u16,
    opened: Arc<AtomicUsize>,
    lose_below: Arc<AtomicUsize>,
}

impl LostReplies {
    pub fn start(upstream: u16) -> Self {
        let opened = Arc::new(AtomicUsize::new(0));
        let lose_below = Arc::new(AtomicUsize::new(0));
        let (next, cut) = (Arc::clone(&opened), Arc::clone(&lose_below));
        let port = proxy(upstream, move |requests, replies| {
            let connection = next.fetch_add(1, Ordering::SeqCst);
            let cut = Arc::clone(&cut);
            thread::spawn(move || relay(requests, || true, || {}));
            let passes = move || connection >= cut.load(Ordering::SeqCst);
            thread::spawn(move || relay(replies, passes, || {}));
        });
        Self {
            port,
            opened,
            lose_below,
        }
    }

    pub fn url(&self) -> String {
        loopback_url(self.port)
    }

    /// Makes every connection open now lose its next reply; later ones pass.
    pub fn lose_replies(&self) {
        let opened = self.opened.load(Ordering::SeqCst);
        self.lose_below.store(opened, Ordering::SeqCst);
    }
}

/// A TCP proxy to the Redis on `upstream` that a partition can cut: from [`Self::cut`] on,
/// nothing passes in either direction on the connections that came from `source`, and
/// they stay open, as when the network between two hosts drops every packet. What was
/// read is held, not dropped, until [`Self::heal`]. Connections from other addresses pass
/// through as ever: a replica that connects from its own address (Redis's
/// `bind-source-addr`) is cut off while clients still reach the server through the proxy.
pub struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Partition {
    pub fn start(upstream: u16, source: IpAddr) -> Self {
        let cut = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cut);
        let port = proxy(upstream, move |requests, replies| {
            let from_source = requests.0.peer_addr().is_ok_and(|peer| peer.ip() == source);
            for direction in [requests, replies] {
                let flag = Arc::clone(&flag);
                let passes = move || {
                    while from_source && flag.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(10));
                    }
                    true
                };
                thread::spawn(move || relay(direction, passes, || {}));
            }
        });
        Self { port, cut }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the connections from the source: whatever they carry from now on is held.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Ends the partition: what was held passes on.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Partition {
    /// Healed, so that no relay thread waits for ever.
    fn drop(&mut self) {
        self.heal();
    }
}
