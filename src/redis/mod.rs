//! The Redis layer: everything that faces Redis, below the settings, the worker, the health
//! check and `acl-rule`, which read it through [`RedisTarget`] and its [`Topology`].
//!
//! Its files, from the top: `target` (the URL and what is given beside it, turned into one
//! value), `sentinel` and `cluster` (what differs between the two ways of finding the
//! server), `node_set` (what they share), `record` (applying a tick exactly once), `connection` (the one place a connection is
//! opened, and a failure's kind), `tls` (the certificates a connection trusts and shows)
//! and `error` (why a URL or a setting beside it cannot be used).

mod cluster;
pub mod connection;
mod error;
mod node_set;
pub mod record;
mod sentinel;
mod target;
pub mod tls;

pub use cluster::{Cluster, Redirect};
pub use target::{RedisTarget, TargetSettings, Topology, redact};
