//! counter-worker: increments a Redis key on a fixed schedule, the production-grade form
//! of the classic "Python + Redis + Compose" counter.
//!
//! The binary (`main.rs`) only wires these modules together; the logic lives here, where
//! the tests reach it.

#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod connection;
pub mod failure_log;
pub mod health;
pub mod health_state;
pub mod logging;
pub mod node_address;
pub mod redirect;
pub mod redis_target;
pub mod resources;
pub mod schedule;
pub mod secret_file;
pub mod sentinel;
pub mod shutdown;
pub mod tls;
pub mod worker;
