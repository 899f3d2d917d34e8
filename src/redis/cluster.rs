//! Where to reach the key under Redis Cluster, without ever sending an `INCR` twice.
//!
//! A cluster splits the keys into 16384 slots, each served by one primary, and answers a
//! command sent to the wrong node with `MOVED slot host:port` (the slot lives there now) or
//! `ASK slot host:port` (it is being migrated; try there once). Either reply means the node
//! did not execute the command, so it is safe to send on. redis-rs's cluster client also
//! resends a command after an I/O error, when an `INCR` may already have been applied, and
//! its retry budget is shared with the redirects, so it is not used. Instead a plain
//! connection serves the worker's usual loop: it goes to the node that last `MOVED` us for
//! the key (which the worker's loop remembers), or to the first seed node that answers,
//! and `redirect` follows the replies. After a failover the dead primary's address
//! fails, a seed answers, and its `MOVED` names the promoted replica.

use std::time::Duration;

use redis::{RedisError, RedisResult};

use super::connection::{self, Connection, NodeAddress};
use super::error::TargetError;
use super::node_set::{NodeSet, UrlForm, explained, first_to_answer, parse_multi_host};

/// The URL that names a cluster's seed nodes; over TLS, TLS to every node. A seed node
/// listens on 6379 unless the URL says otherwise.
pub const URL_FORM: UrlForm = UrlForm("redis+cluster", "rediss+cluster", "seed node", 6379);

/// A cluster's seed nodes and how to log in to its nodes.
///
/// Built from `redis+cluster://[user:password@]host1[:port],host2[:port],…`.
#[derive(Clone)]
pub struct Cluster {
    /// The seed nodes, and the login and TLS for every node.
    pub nodes: NodeSet,
}

impl Cluster {
    /// Validates a `redis+cluster://` URL; the error is a reason for a person, without the
    /// URL (which may hold a password).
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let url = parse_multi_host(url, &URL_FORM)?;
        if !url.path.is_empty() {
            return Err(TargetError::ClusterPath);
        }
        Ok(Self {
            nodes: url.into_node_set("")?,
        })
    }

    /// Opens a connection to whichever answers first of `key_owner` (the key's primary
    /// as far as the caller knows) and the seed nodes: any node of the cluster will
    /// redirect the `INCR` to the right one. Replies may take `extra_reply_time` beyond
    /// the standard timeout (see [`connection::open`]).
    pub async fn connect(
        &self,
        extra_reply_time: Duration,
        key_owner: Option<&NodeAddress>,
    ) -> RedisResult<Connection> {
        let nodes = key_owner.into_iter().chain(&self.nodes.addresses);
        let attempts = nodes.map(|(host, port)| async move {
            let client = self.nodes.data_client(host, *port)?;
            connection::open(&client, extra_reply_time)
                .await
                .map_err(|err| explained(err, "a cluster node failed", &format!("{host}:{port}")))
        });
        first_to_answer(
            attempts,
            "no node of the cluster answered",
            RedisError::to_string,
        )
        .await
    }
}

/// What a cluster node said instead of executing the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED`: the slot lives on this node now.
    Moved(String, u16),
    /// `ASK`: the slot is being migrated to this node; send it there once, after `ASKING`.
    Ask(String, u16),
}

impl Redirect {
    /// The redirect in `err`, a reply to a single command or to the first command of a
    /// pipeline (the `INCR` of `INCR` + `WAIT`); `None` for any other error.
    pub fn of(err: &RedisError) -> Option<Self> {
        let errors = err.clone().into_server_errors()?;
        let (_, first) = errors.iter().find(|(index, _)| *index == 0)?;
        let mut words = first.details()?.split_ascii_whitespace();
        let _slot = words.next()?;
        let (host, port) = words.next()?.rsplit_once(':')?;
        let (host, port) = (host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?);
        match first.code() {
            "MOVED" => Some(Self::Moved(host, port)),
            "ASK" => Some(Self::Ask(host, port)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seed_nodes_and_credentials() {
        let cluster =
            Cluster::parse("redis+cluster://app:p%40ss@n1,10.0.0.2:7001,[::1]:7002/").unwrap();
        assert_eq!(
            cluster.nodes.addresses,
            [
                ("n1".to_owned(), URL_FORM.3),
                ("10.0.0.2".to_owned(), 7001),
                ("::1".to_owned(), 7002)
            ]
        );
        assert_eq!(cluster.nodes.redis_settings().username(), Some("app"));
        assert_eq!(cluster.nodes.redis_settings().password(), Some("p@ss"));
        assert!(!cluster.nodes.uses_tls());
        assert!(
            Cluster::parse("rediss+cluster://n1")
                .unwrap()
                .nodes
                .uses_tls()
        );
    }

    #[test]
    fn a_redirect_is_read_from_its_reply_code_and_address_and_nothing_else_is() {
        let reply = |text: &str| {
            let value = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
            value.extract_error().unwrap_err()
        };
        let of = |text: &str| Redirect::of(&reply(text));
        let moved = Redirect::Moved("10.0.0.2".to_owned(), 6381);
        assert_eq!(of("MOVED 3999 10.0.0.2:6381"), Some(moved));
        assert_eq!(
            of("ASK 3999 [::1]:6382"),
            Some(Redirect::Ask("::1".to_owned(), 6382))
        );
        for other in [
            "ERR MOVED 3999 10.0.0.2:6381",
            "MOVED 3999",
            "MOVED 3999 10.0.0.2:port",
            "TRYAGAIN Multiple keys request during rehashing of slot",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    #[test]
    fn rejects_incomplete_urls_with_a_reason() {
        crate::redis::node_set::assert_refused(
            Cluster::parse,
            &[
                ("redis+cluster://", TargetError::NoHosts("seed node")),
                ("redis+cluster://n1/1", TargetError::ClusterPath),
                (
                    "redis://n1",
                    TargetError::WrongScheme(URL_FORM.0, URL_FORM.1),
                ),
            ],
        );
    }
}
