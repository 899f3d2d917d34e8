//! Connections to Redis: every connect and every reply is bounded by a timeout, and the
//! worker learns at once when Redis closes a connection it is not using.
//!
//! A connection closed while idle (Redis's `timeout`, a NAT or load-balancer idle timer,
//! `CLIENT KILL`, a restart) must not cost a tick: the client library reports the close
//! as a `Disconnection` push as soon as it reads the end of the stream, which needs
//! RESP3 (Redis 6 or newer), and the worker then reconnects before sending anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, IntoConnectionInfo, ProtocolVersion,
    PushInfo, PushKind, RedisConnectionInfo, RedisError, RedisResult,
};

use super::error::TargetError;
use super::tls::{self, TlsSettings};

/// How long to wait for a connection (TCP, `HELLO`/`AUTH`, `SELECT`) before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the reply to one command, so a black-holed Redis cannot hang us.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Replies that mean "this node cannot take writes now" (a demoted master, a master
/// cut off from its replicas): the connection is replaced, and with Sentinel the master
/// is looked up again. The `INCR` was refused, not applied.
pub const WRONG_NODE_CODES: [&str; 3] = ["READONLY", "MASTERDOWN", "NOREPLICAS"];

/// A server's `host` and `port`, as a URL names it.
pub type NodeAddress = (String, u16);

/// Opens one connection through `client` (its address, login and TLS), bounded by
/// [`CONNECT_TIMEOUT`], whose commands are bounded by [`RESPONSE_TIMEOUT`] plus
/// `extra_reply_time` (a server-side wait such as `WAIT`'s timeout).
///
/// Every connection the program makes (to a Redis server, to a sentinel, to a cluster
/// node) is opened here; only one in RESP3 (every data node's, see [`data_node_settings`])
/// learns of a close.
pub async fn open(client: &Client, extra_reply_time: Duration) -> Result<Connection, RedisError> {
    let closed = Arc::new(AtomicBool::new(false));
    let closed_by_server = Arc::clone(&closed);
    let on_push = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
        if push.kind == PushKind::Disconnection {
            closed_by_server.store(true, Ordering::Relaxed);
        }
        Ok(())
    };
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT + extra_reply_time));
    // Only RESP3 carries the close report; a sentinel is asked once, in RESP2.
    let info = client.get_connection_info();
    if info.redis_settings().protocol() == ProtocolVersion::RESP3 {
        config = config.set_push_sender(on_push);
    }
    let server = info.addr().to_string();
    let node = match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    };
    let redis = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(Connection {
        redis,
        closed,
        server,
        node,
    })
}

/// The client for one node at `host:port`, logging in with `settings`, over TLS with
/// `tls` when given, else over plain TCP.
///
/// Every connection to a node whose address was learnt at run time (a master named by
/// the sentinels, a cluster node a redirect names) is built here, so it uses the same
/// transport as the URL said.
pub fn node_client(
    host: &str,
    port: u16,
    settings: RedisConnectionInfo,
    tls: Option<&TlsSettings>,
) -> RedisResult<Client> {
    let host = host.to_owned();
    let Some(tls) = tls else {
        let info = ConnectionAddr::Tcp(host, port).into_connection_info()?;
        return Client::open(info.set_redis_settings(settings));
    };
    let address = ConnectionAddr::TcpTls {
        host,
        port,
        insecure: false,
        tls_params: None,
    };
    tls.client(address.into_connection_info()?.set_redis_settings(settings))
}

/// The settings for a Redis data node (at a fixed address, a master found through
/// Sentinel, a cluster node), checked and completed the same way.
///
/// RESP3 lets the client report a connection that Redis closed while it was idle; Redis 6
/// and newer speak it. No `CLIENT SETINFO` on connect: Redis 7.0 does not know it, and from
/// 7.2 on a user limited to the worker's rule (`acl_rule`) would log a denial in `ACL LOG`
/// for every connection.
pub fn data_node_settings(
    settings: RedisConnectionInfo,
) -> Result<RedisConnectionInfo, TargetError> {
    if settings.db() < 0 {
        return Err(TargetError::NegativeDatabase);
    }
    Ok(settings
        .set_protocol(ProtocolVersion::RESP3)
        .set_skip_set_lib_name())
}

/// A connection to Redis that knows whether Redis has closed it.
pub struct Connection {
    redis: MultiplexedConnection,
    closed: Arc<AtomicBool>,
    server: String,
    node: Option<NodeAddress>,
}

impl Connection {
    /// True once the connection has been closed from the other side; nothing sent on it
    /// can arrive any more, so replacing it before a command is always safe.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The server's `host:port`, for log lines (which master the sentinels named).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's host and port (none for a Unix socket): under Cluster, the node that
    /// executed a command sent on this connection serves the command's key.
    pub fn node(&self) -> Option<&NodeAddress> {
        self.node.as_ref()
    }

    /// The connection, to send commands on.
    pub fn redis(&mut self) -> &mut MultiplexedConnection {
        &mut self.redis
    }
}

/// True when Redis itself answered with an error (`WRONGTYPE`, `NOAUTH`, …): the command
/// was refused, and retrying it later is the right move.
///
/// Anything else (I/O, timeouts, a garbled reply) means the connection cannot be trusted
/// and must be replaced.
pub fn is_reply_error(err: &RedisError) -> bool {
    matches!(err.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// True for a refusal in [`WRONG_NODE_CODES`], also inside a pipeline's reply.
pub fn names_wrong_node(err: &RedisError) -> bool {
    has_reply_code(err, &WRONG_NODE_CODES)
}

/// True when Redis refused with one of `codes`, also as one item of a pipeline's reply
/// (the tick's command with `WAIT`).
pub fn has_reply_code(err: &RedisError, codes: &[&str]) -> bool {
    if !is_reply_error(err) {
        return false;
    }
    if let Some(code) = err.code() {
        return codes.contains(&code);
    }
    err.clone()
        .into_server_errors()
        .is_some_and(|items| items.iter().any(|(_, item)| codes.contains(&item.code())))
}

/// `err` for a log line: Redis's own error code first (`READONLY …`, `WRONGTYPE …`),
/// which the client's text replaces with a category name for codes it knows.
pub fn describe(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => err.to_string(),
    }
}

/// A failure told by its kind and the fields that stay the same from one attempt to the
/// next, never by its text, which may carry a time, a port or a count: how the failure log
/// tells a repeat from a new failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureKind {
    kind: ErrorKind,
    code: Option<String>,
    io: Option<std::io::ErrorKind>,
    handshake: Option<tls::HandshakeFailure>,
}

/// The kind of `err`: the client's error kind, Redis's error code, the I/O error's kind and
/// the TLS handshake's error, whichever it has.
pub fn failure_kind(err: &RedisError) -> FailureKind {
    FailureKind {
        kind: err.kind(),
        code: err.code().map(str::to_owned),
        io: io_error_kind(err),
        handshake: tls::handshake_failure(err),
    }
}

/// The kind of the I/O error inside `err` (a refused connection, a timeout, a reset), as
/// redis-rs keeps it; `None` for any other error.
pub fn io_error_kind(err: &RedisError) -> Option<std::io::ErrorKind> {
    tls::cause::<std::io::Error>(err).map(std::io::Error::kind)
}

/// True when Redis refused the connection itself (a wrong password, a missing ACL user,
/// a TLS certificate it or we do not accept): only a person can fix that, so it is logged
/// as an error, not a warning.
pub fn is_refusal(err: &RedisError) -> bool {
    is_reply_error(err)
        || err.kind() == ErrorKind::AuthenticationFailed
        || tls::is_certificate_refusal(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_known_by_its_kind_not_by_its_text() {
        let timed_out =
            |text: &str| RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, text));
        let first = failure_kind(&timed_out("after 2001 ms"));
        assert_eq!(first, failure_kind(&timed_out("after 2002 ms")));
        assert_eq!(first.io, Some(std::io::ErrorKind::TimedOut));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_ne!(first, failure_kind(&RedisError::from(refused)));
    }

    #[test]
    fn server_replies_keep_the_connection_and_transport_failures_drop_it() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!is_reply_error(&io));
        assert!(!names_wrong_node(&io));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!is_reply_error(&timeout));
    }
}
