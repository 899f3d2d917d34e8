//! Following a Redis Cluster's `MOVED` and `ASK` for the tick's `INCR`, on the same tick, so
//! that a resharding or a failover costs no count and no `INCR` is ever sent twice.
//!
//! Only a redirect reply is followed: the node that gave it did not execute the command
//! (see `cluster`). After `MOVED` the worker's connection is replaced by one to the named
//! node, which the caller remembers as the key's primary; after `ASK` the command goes once to the
//! named node after `ASKING`, on a connection of its own, and the usual one stays (the slot
//! is still the old node's until the migration ends). Anything else, an I/O error or a
//! timeout above all, is returned as it is: the worker then treats the `INCR` as of unknown
//! outcome and never resends it. If the named node cannot be reached, nothing was sent
//! there, and the redirect itself is returned: a refusal, retried on the next tick.

use std::time::Duration;

use redis::RedisResult;
use redis::aio::MultiplexedConnection;
use tracing::{debug, info, warn};

use crate::redis::connection::{self, Connection, NodeAddress};
use crate::redis::{Cluster, Redirect};

/// The most redirects followed for one command: a slot moves once at a time, so more
/// means a cluster that disagrees with itself, and the tick gives up.
pub const MAX_REDIRECTS: usize = 3;

/// Where a command goes: to the node taken to serve the key's slot, or to the node an
/// `ASK` named, after `ASKING`. That node takes one command of the slot per `ASKING`: a
/// second one (the script's source after `NOSCRIPT`) needs `ASKING` again, or the node
/// answers `MOVED` back to the node that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the node taken to serve the slot.
    Served,
    /// To the node an `ASK` named; `ASKING` was sent just before.
    Asked,
}

/// Runs `send` on `connection`, then on the nodes of `cluster` that redirects name, each
/// time with the [`Route`] it takes;
/// `extra_reply_time` is what a new connection's reply timeout allows for besides the
/// standard one, as in [`connection::open`]. A `MOVED` that names a node other than
/// `key_owner` makes it the new `key_owner`, and so does a node that executes the command
/// on `connection` without redirecting it.
pub async fn following_redirects<T>(
    cluster: &Cluster,
    connection: &mut Connection,
    key_owner: &mut Option<NodeAddress>,
    extra_reply_time: Duration,
    send: impl AsyncFn(&mut MultiplexedConnection, Route) -> RedisResult<T>,
) -> RedisResult<T> {
    let mut result = send(connection.redis(), Route::Served).await;
    // Whether `result` came from `connection` (not from an `ASK`'s node of its own).
    let mut on_connection = true;
    for _ in 0..MAX_REDIRECTS {
        let Some(redirect) = result.as_ref().err().and_then(Redirect::of) else {
            break;
        };
        let (Redirect::Moved(host, port) | Redirect::Ask(host, port)) = &redirect;
        let node_name = format!("{host}:{port}");
        let Some(mut there) = open_named(cluster, host, *port, extra_reply_time).await else {
            break;
        };
        result = match &redirect {
            Redirect::Moved(host, port) => {
                note_moved_to(key_owner, host, *port);
                *connection = there;
                on_connection = true;
                send(connection.redis(), Route::Served).await
            }
            Redirect::Ask(..) => {
                debug!(node = %node_name, "the key's slot is migrating (ASK); sending there once after ASKING");
                if let Err(err) = redis::cmd("ASKING").query_async::<()>(there.redis()).await {
                    warn!(node = %node_name, error = %err, "the node an ASK names did not take ASKING; the INCR was not sent there");
                    break;
                }
                on_connection = false;
                send(there.redis(), Route::Asked).await
            }
        };
    }
    if result.is_ok() && on_connection {
        note_executed_on(connection, key_owner);
    }
    result
}

/// Makes the node a `MOVED` names the `key_owner`, logged once: the slot lives there now.
fn note_moved_to(key_owner: &mut Option<NodeAddress>, host: &str, port: u16) {
    let owner = (host.to_owned(), port);
    if key_owner.as_ref() != Some(&owner) {
        *key_owner = Some(owner);
        let node_name = format!("{host}:{port}");
        info!(node = %node_name, "the key's slot is served by {node_name} (MOVED); sending there");
    }
}

/// A connection to the node at `host:port` that a redirect names; `None`, with a warning,
/// when it cannot be reached: nothing was sent there.
async fn open_named(
    cluster: &Cluster,
    host: &str,
    port: u16,
    extra_reply_time: Duration,
) -> Option<Connection> {
    let node_name = format!("{host}:{port}");
    let node = match cluster.nodes.data_client(host, port) {
        Ok(node) => node,
        Err(err) => {
            warn!(node = %node_name, error = %err, "cannot use the node a cluster redirect names");
            return None;
        }
    };
    match connection::open(&node, extra_reply_time).await {
        Ok(there) => Some(there),
        Err(err) => {
            warn!(node = %node_name, error = %err, "cannot reach the node a cluster redirect names; the INCR was not sent there");
            None
        }
    }
}

/// Makes the node that executed the command on `connection` the `key_owner`: it serves
/// the key's slot. A seed that answers first may be the key's primary already (at the
/// start, or the replica promoted by a failover), and then no `MOVED` ever names it.
fn note_executed_on(connection: &Connection, key_owner: &mut Option<NodeAddress>) {
    let Some(node) = connection.node() else {
        return;
    };
    if key_owner.as_ref() != Some(node) {
        let node_name = connection.server();
        info!(node = %node_name, "the key's slot is served by {node_name}, which took the INCR; counting there");
        *key_owner = Some(node.clone());
    }
}
