//! A Redis Sentinel deployment on loopback for one test: a master, two replicas and three
//! sentinels (quorum 2), each a real `redis-server` process on a free port.
//!
//! Settings follow what a production deployment should use: AOF on, `min-replicas-to-write
//! 1` on every data node (a replica may become master), and a down-after of 5 s, since
//! shorter ones cause spurious failovers on a loaded machine.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::net::Partition;
use super::{RedisServer, wait_until};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";

/// How long a failover may take here: 5 s to declare the master down, an election, a
/// promotion, on a loaded machine.
pub const FAILOVER_PATIENCE: Duration = Duration::from_secs(60);

/// One master, two replicas, three sentinels, all killed when dropped.
pub struct SentinelLab {
    /// The data nodes; the first one starts as master.
    data: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// The proxy the replicas replicate through, in a lab started with
    /// [`Self::start_with_replication_through_proxy`].
    replication: Option<Partition>,
}

impl SentinelLab {
    /// A lab without passwords.
    pub fn start() -> Self {
        Self::start_with_passwords(None, None)
    }

    /// A lab whose data nodes require `data_password` and whose sentinels require
    /// `sentinel_password`; returns once every sentinel knows both replicas and the other
    /// two sentinels, so a failover can happen.
    pub fn start_with_passwords(
        data_password: Option<&str>,
        sentinel_password: Option<&str>,
    ) -> Self {
        Self::start_with(data_password, sentinel_password, false)
    }

    /// A lab whose replicas replicate through a proxy that [`Self::cut_replication`] cuts:
    /// the master goes on acknowledging writes that no replica receives, and a failover
    /// then promotes a replica that misses them.
    ///
    /// The sentinels see each replica replicate from the proxy's port, not the master's,
    /// and would point it at the master once a failover timeout has passed since they
    /// found it (`+fix-slave-config`); the timeout is 5 min here, longer than any test.
    pub fn start_with_replication_through_proxy() -> Self {
        Self::start_with(None, None, true)
    }

    fn start_with(
        data_password: Option<&str>,
        sentinel_password: Option<&str>,
        through_proxy: bool,
    ) -> Self {
        let mut replication = vec!["--min-replicas-to-write", "1"];
        if let Some(password) = data_password {
            replication.extend(["--masterauth", password]);
        }
        let mut master = RedisServer::not_started(data_password).with_args(&replication);
        master.launch();
        let master_port = master.port().to_string();
        let proxy =
            through_proxy.then(|| Partition::start(master.port(), Ipv4Addr::LOCALHOST.into()));
        let replicated_from = proxy
            .as_ref()
            .map_or(master_port.clone(), |proxy| proxy.port().to_string());
        let mut data = vec![master];
        for _ in 0..2 {
            let mut replica = RedisServer::not_started(data_password)
                .with_args(&replication)
                .with_args(&["--replicaof", "127.0.0.1", &replicated_from]);
            replica.launch();
            data.push(replica);
        }
        wait_until("both replicas are in sync", FAILOVER_PATIENCE, || {
            data[0].info("replication").get("connected_slaves") == Some(&"2".to_owned())
        });

        let failover_timeout = if through_proxy { 300_000 } else { 30_000 };
        let mut config = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 5000\n\
             sentinel failover-timeout {MASTER_NAME} {failover_timeout}\n"
        );
        if let Some(password) = data_password {
            config.push_str(&format!("sentinel auth-pass {MASTER_NAME} {password}\n"));
        }
        if let Some(password) = sentinel_password {
            config.push_str(&format!("sentinel sentinel-pass {password}\n"));
        }
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                let mut sentinel = RedisServer::sentinel_not_started(&config, sentinel_password);
                sentinel.launch();
                sentinel
            })
            .collect();
        let lab = Self {
            data,
            sentinels,
            replication: proxy,
        };
        wait_until(
            "the sentinels know each other and the replicas",
            FAILOVER_PATIENCE,
            || {
                lab.sentinels.iter().all(|sentinel| {
                    let master: HashMap<String, String> =
                        sentinel.query(redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME));
                    master.get("num-slaves").map(String::as_str) == Some("2")
                        && master.get("num-other-sentinels").map(String::as_str) == Some("2")
                })
            },
        );
        lab
    }

    /// The URL the worker uses: every sentinel, no credentials.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The port of the master, as the first sentinel names it.
    pub fn master_port(&self) -> u16 {
        self.master_named_by(&self.sentinels[0])
    }

    /// The ports of the data nodes that are not the master.
    pub fn replica_ports(&self) -> Vec<u16> {
        let master = self.master_port();
        self.data
            .iter()
            .map(RedisServer::port)
            .filter(|port| *port != master)
            .collect()
    }

    /// The data node listening on `port`.
    pub fn data_node(&self, port: u16) -> &RedisServer {
        self.data
            .iter()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// The data node listening on `port`, to stop or start it.
    pub fn data_node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.data
            .iter_mut()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// Cuts the replicas off the master in a lab started with
    /// [`Self::start_with_replication_through_proxy`]: their links stay open, and nothing
    /// passes on them in either direction.
    pub fn cut_replication(&self) {
        self.replication
            .as_ref()
            .expect("a lab whose replicas replicate through a proxy")
            .cut();
    }

    /// One of the sentinels, to send `SENTINEL FAILOVER` to.
    pub fn sentinel(&self) -> &RedisServer {
        &self.sentinels[0]
    }

    /// Waits until every sentinel names a master other than the one on `old_port`, and
    /// that server says it is master; returns its port.
    pub fn wait_for_failover_from(&self, old_port: u16) -> u16 {
        let mut new_port = old_port;
        wait_until("a new master", FAILOVER_PATIENCE, || {
            let named: Vec<u16> = self
                .sentinels
                .iter()
                .map(|sentinel| self.master_named_by(sentinel))
                .collect();
            new_port = named[0];
            new_port != old_port
                && named.iter().all(|port| *port == new_port)
                && self.data_node(new_port).role().as_deref() == Some("master")
        });
        new_port
    }

    fn master_named_by(&self, sentinel: &RedisServer) -> u16 {
        let (_host, port): (String, u16) = sentinel.query(
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME),
        );
        port
    }
}

impl RedisServer {
    /// The first word of `ROLE` (`master`, `slave` or `sentinel`); `None` when the server
    /// did not answer, as when Sentinel disconnects every client while demoting it.
    pub fn role(&self) -> Option<String> {
        let role: Vec<redis::Value> = self
            .connection()
            .and_then(|mut connection| redis::cmd("ROLE").query(&mut connection))
            .ok()?;
        match role.first() {
            Some(redis::Value::BulkString(word)) => {
                Some(String::from_utf8_lossy(word).into_owned())
            }
            other => panic!("unexpected ROLE reply {other:?}"),
        }
    }

    /// One section of `INFO`, as field names and values.
    pub fn info(&self, section: &str) -> HashMap<String, String> {
        let text: String = self.query(redis::cmd("INFO").arg(section));
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
            .collect()
    }
}
