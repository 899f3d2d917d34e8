//! counter-worker: increments a Redis key on a fixed schedule, the production-grade form
//! of the classic "Python + Redis + Compose" counter.
//!
//! The binary (`main.rs`) only wires these modules together; the logic lives here, where
//! the tests reach it. The modules are private and form layers in the order of README's
//! module table (`scripts/check-module-order` keeps them so); what the binary calls is
//! exported below, with the types of what those calls return, and nothing else.

#![warn(missing_docs)]

mod acl_rule;
mod config;
mod escape;
mod failure_log;
mod health;
mod health_state;
mod logging;
mod redirect;
mod redis;
mod resources;
mod schedule;
mod setting_file;
mod shutdown;
mod worker;

pub use acl_rule::for_config as acl_rule;
pub use config::{Command, Config, ConfigError, ReplicaWait};
pub use escape::Escaped;
pub use health::{Unhealthy, check as healthcheck};
pub use health_state::{HealthRecorder, StateError};
pub use logging::{FINAL_FLUSH_PATIENCE, LogFormat, LogOutput, init as init_logging};
pub use resources::{TooFewDescriptors, check_descriptor_headroom};
pub use shutdown::{HeldSignals, cancel_on_signal};
pub use worker::{Summary, Worker};
