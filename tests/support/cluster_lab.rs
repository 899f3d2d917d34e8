//! A Redis Cluster on loopback for one test: three primaries and three replicas, each a real
//! server process on a free port, joined by `redis-cli --cluster create`.
//!
//! A node timeout of 5 s (a failover in well under 15 s, and no spurious one on a loaded
//! machine; longer than the worker's 2 s reply timeout, so a short pause is only a pause);
//! AOF is on, as on every harness Redis. The test's own view of the key (`GET`, who owns its slot) asks the
//! cluster through `CLUSTER KEYSLOT` and `CLUSTER NODES`, never through the worker's code.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use super::net::Partition;
use super::tls_lab::{Certificates, ServerCert};
use super::wait_until;
use super::{RedisServer, free_port};

/// How long a cluster may take to form or to fail over here, on a loaded machine.
pub const CLUSTER_PATIENCE: Duration = Duration::from_secs(60);

/// Six nodes; which are primaries changes with failovers, so it is always asked.
pub struct ClusterLab {
    pub nodes: Vec<RedisServer>,
    /// Each node's TLS port, in a cluster started with [`Self::start_over_tls`].
    tls_ports: Vec<u16>,
}

/// One line of `CLUSTER NODES`, the parts the tests use.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// The slot ranges it serves, `(first, last)`.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterLab {
    /// Starts six nodes and joins them; returns once every node sees the cluster as ok.
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// A cluster whose nodes also serve TLS with the lab's certificates, to clients and
    /// to each other (`tls-cluster`, `tls-replication`).
    pub fn start_over_tls(certificates: &Certificates) -> Self {
        let tls_ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let mut lab = Self::start_with(|index| {
            let mut args = certificates.server_args(tls_ports[index], ServerCert::Valid, false);
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(str::to_owned));
            args
        });
        lab.tls_ports = tls_ports;
        lab
    }

    /// The worker's URL over TLS: every node's TLS port as a seed.
    pub fn tls_url(&self) -> String {
        let seeds: Vec<String> = self
            .tls_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("rediss+cluster://{}", seeds.join(","))
    }

    /// Starts six nodes, node `i` with `extra(i)` arguments, and joins them.
    fn start_with(extra: impl Fn(usize) -> Vec<String>) -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|index| {
                // Its own bus port: the default, port + 10000, may be taken or too high.
                let bus = free_port().to_string();
                let node = RedisServer::not_started(None).with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "5000",
                    // Replicas sync at once, not after the default 5 s wait for others.
                    "--repl-diskless-sync-delay",
                    "0",
                ]);
                let extra = extra(index);
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let mut node = node.with_args(&extra);
                node.launch();
                node
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (is redis-cli installed?)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let lab = Self {
            nodes,
            tls_ports: Vec::new(),
        };
        lab.wait_until_ok();
        // A replica that never synced refuses to fail over: wait for all three.
        wait_until("every replica in sync", CLUSTER_PATIENCE, || {
            let synced = lab.nodes.iter().filter(|node| {
                let replication = node.info("replication");
                replication.get("master_link_status").map(String::as_str) == Some("up")
            });
            synced.count() == 3
        });
        lab
    }

    /// Waits until every running node reports `cluster_state:ok`: every slot served.
    pub fn wait_until_ok(&self) {
        wait_until("the cluster is ok on every node", CLUSTER_PATIENCE, || {
            self.nodes
                .iter()
                .filter(|node| node.is_running())
                .all(|node| {
                    let info: String = node.query(redis::cmd("CLUSTER").arg("INFO"));
                    info.lines().any(|line| line.trim() == "cluster_state:ok")
                })
        });
    }

    /// The worker's URL: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// A running node, to ask questions.
    fn any_running(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.is_running())
            .expect("a running node")
    }

    /// Each running node as it sees itself (the `myself` line of its `CLUSTER NODES`):
    /// a node's view of the others may lag behind, its view of itself does not.
    pub fn topology(&self) -> Vec<NodeLine> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .filter_map(|node| {
                let text: String = node.query(redis::cmd("CLUSTER").arg("NODES"));
                let myself = text.lines().find(|line| line.contains("myself"))?;
                parse_node_line(myself)
            })
            .collect()
    }

    /// The slot of `key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        self.any_running()
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// The port of the primary that serves `key`'s slot, as the cluster says now.
    pub fn owner_of(&self, key: &str) -> u16 {
        self.owner_of_if_served(key)
            .unwrap_or_else(|| panic!("no primary serves the slot of {key:?}"))
    }

    /// The node listening on `port` (its plain or its TLS port).
    pub fn node(&self, port: u16) -> &RedisServer {
        let index = self.tls_ports.iter().position(|tls| *tls == port);
        self.nodes
            .iter()
            .enumerate()
            .find(|(i, node)| node.port() == port || index == Some(*i))
            .map(|(_, node)| node)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The node listening on `port`, to stop or start it.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The value of `key`, read on the primary that serves it.
    pub fn counter(&self, key: &str) -> Option<i64> {
        self.node(self.owner_of(key)).counter(key)
    }

    /// The port of the replica of the primary on `primary_port`.
    pub fn replica_of(&self, primary_port: u16) -> u16 {
        let primary = primary_port.to_string();
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .find(|node| {
                let replication = node.info("replication");
                replication.get("role").map(String::as_str) == Some("slave")
                    && replication.get("master_port") == Some(&primary)
            })
            .map(RedisServer::port)
            .unwrap_or_else(|| panic!("no replica of the primary on {primary_port}"))
    }

    /// The value of `key` as the replica on `port` holds it (`READONLY`, then `GET`).
    pub fn counter_on_replica(&self, port: u16, key: &str) -> Option<i64> {
        let mut connection = self
            .node(port)
            .connection()
            .expect("connect to the replica");
        let _: () = redis::cmd("READONLY")
            .query(&mut connection)
            .expect("READONLY");
        redis::cmd("GET")
            .arg(key)
            .query(&mut connection)
            .expect("GET on the replica")
    }

    /// Makes the replica of the primary on `primary_port` replicate through a
    /// [`Partition`] that cuts it alone. The primary announces the proxy's port to the
    /// cluster (`cluster-announce-port`), so its replica, and clients that a redirect
    /// sends there, connect through the proxy; the replica connects from 127.0.0.2
    /// (`bind-source-addr`, announcing 127.0.0.1 on the cluster bus all the same), the
    /// only address the partition cuts. Returns the proxy once the replica is in sync
    /// through it. The primary is known by the proxy's port from then on.
    pub fn replication_through_partition(&self, primary_port: u16) -> Partition {
        let replica = self.node(self.replica_of(primary_port));
        let replica_address = Ipv4Addr::new(127, 0, 0, 2);
        let partition = Partition::start(primary_port, replica_address.into());
        let config_set = |node: &RedisServer, name: &str, value: &str| {
            let _: () = node.query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value));
        };
        config_set(replica, "cluster-announce-ip", "127.0.0.1");
        config_set(replica, "bind-source-addr", &replica_address.to_string());
        config_set(
            self.node(primary_port),
            "cluster-announce-port",
            &partition.port().to_string(),
        );
        let through = partition.port().to_string();
        wait_until(
            "the replica in sync through the partition",
            CLUSTER_PATIENCE,
            || {
                let replication = replica.info("replication");
                replication.get("master_port") == Some(&through)
                    && replication.get("master_link_status").map(String::as_str) == Some("up")
            },
        );
        partition
    }

    /// Waits until a primary other than the one on `old_port` serves `key` and answers as
    /// master; returns its port.
    pub fn wait_for_new_owner(&self, key: &str, old_port: u16) -> u16 {
        let mut owner = old_port;
        wait_until(
            "a replica promoted in the dead primary's place",
            CLUSTER_PATIENCE,
            || {
                owner = self.owner_of_if_served(key).unwrap_or(old_port);
                owner != old_port && self.node(owner).role().as_deref() == Some("master")
            },
        );
        owner
    }

    /// The same, `None` while no live primary serves it (during a failover).
    fn owner_of_if_served(&self, key: &str) -> Option<u16> {
        let slot = self.slot_of(key);
        self.topology()
            .into_iter()
            .find(|node| {
                node.primary
                    && !node.failed
                    && node.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|node| node.port)
    }

    /// Moves `key`'s slot from its primary to another one the way `redis-cli --cluster
    /// reshard` does, every key of the slot in one `MIGRATE` (the counter and the
    /// worker's records beside it), calling `between` after the keys have moved and before
    /// the slot's new owner is announced: the window in which the old owner answers `ASK`.
    pub fn migrate_slot_of(&self, key: &str, between: impl FnOnce()) -> u16 {
        let mut between = Some(between);
        self.migrate_slot_in_batches(key, usize::MAX, |all_moved| {
            if all_moved {
                between.take().expect("called once all keys moved")();
            }
        })
    }

    /// Like [`Self::migrate_slot_of`], moving at most `batch` keys of the slot per `MIGRATE`
    /// (as `redis-cli --cluster reshard --cluster-pipeline` does), `key` first, and calling
    /// `after_batch` after each, with whether every key has moved.
    pub fn migrate_slot_in_batches(
        &self,
        key: &str,
        batch: usize,
        mut after_batch: impl FnMut(bool),
    ) -> u16 {
        let slot = self.slot_of(key);
        let source_port = self.owner_of(key);
        let topology = self.topology();
        let id_of = |port: u16| {
            topology
                .iter()
                .find(|node| node.port == port)
                .map(|node| node.id.clone())
                .expect("node id")
        };
        let target_port = topology
            .iter()
            .find(|node| node.primary && !node.failed && node.port != source_port)
            .map(|node| node.port)
            .expect("another primary");
        let (source, target) = (self.node(source_port), self.node(target_port));
        let setslot = |node: &RedisServer, state: &str, id: &str| {
            let _: () = node.query(
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(id),
            );
        };
        setslot(target, "IMPORTING", &id_of(source_port));
        setslot(source, "MIGRATING", &id_of(target_port));
        // The key moves now; until the slot's owner changes, the source answers ASK.
        // Over TLS (`tls-cluster`), MIGRATE speaks TLS to the target's TLS port.
        let migrate_port = match self
            .nodes
            .iter()
            .position(|node| node.port() == target_port)
        {
            Some(index) if !self.tls_ports.is_empty() => self.tls_ports[index],
            _ => target_port,
        };
        let mut keys: Vec<String> = source.query(
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1000),
        );
        keys.sort_by_key(|other| other != key);
        let batches: Vec<&[String]> = keys.chunks(batch).collect();
        for (index, keys) in batches.iter().enumerate() {
            let _: () = source.query(
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(migrate_port)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(*keys),
            );
            after_batch(index + 1 == batches.len());
        }
        // As `redis-cli --cluster reshard` does: the new owner first, then every primary.
        setslot(target, "NODE", &id_of(target_port));
        for primary in topology.iter().filter(|node| node.primary && !node.failed) {
            setslot(self.node(primary.port), "NODE", &id_of(target_port));
        }
        target_port
    }
}

impl RedisServer {
    /// True while the process runs (it may have been killed by the test).
    pub fn is_running(&self) -> bool {
        self.connection().is_ok()
    }
}

/// One `CLUSTER NODES` line: `id ip:port@cport flags master ping pong epoch link slot…`.
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (id, address, flags) = (fields.first()?, fields.get(1)?, fields.get(2)?);
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let slots = fields
        .iter()
        .skip(8)
        .filter(|range| !range.starts_with('['))
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => range.parse().ok().map(|slot| (slot, slot)),
        })
        .collect();
    Some(NodeLine {
        id: (*id).to_owned(),
        port,
        primary: flags.contains("master"),
        failed: flags.contains("fail"),
        slots,
    })
}
