//! Why a Redis URL, or a setting given beside it, cannot be used: one variant per rule, so
//! code and tests decide by the variant, and `Display` gives the reason a person reads
//! after the setting's name and value (`invalid REDIS_URL "…": <reason>`).
//!
//! It sits below every file of the Redis layer that reads a URL (`target`, `sentinel`,
//! `cluster`, `node_set`, `connection`, `tls`), so each of them returns it without a
//! conversion.

use redis::RedisError;

/// A Redis URL, or a setting given beside it, that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    /// The text is no URL at all.
    #[error("not a URL ({0})")]
    NotAUrl(url::ParseError),
    /// A scheme that names no Redis protocol this worker speaks.
    #[error(
        "scheme {0:?} is not supported; use redis://, rediss://, valkey://, valkeys://, \
         redis+sentinel:// or redis+cluster://"
    )]
    UnsupportedScheme(String),
    /// A `redis://` URL without a host.
    #[error("the URL names no host")]
    NoHost,
    /// The Redis client refused what the URL says (a database that is no number, …).
    #[error(transparent)]
    Client(#[from] RedisError),
    /// A database index below 0.
    #[error("the database index must be a non-negative integer")]
    NegativeDatabase,
    /// `#insecure`, which would turn certificate verification off.
    #[error(
        "#insecure would turn off certificate verification, which this worker never does; \
         trust a private CA with REDIS_TLS_CA_FILE instead"
    )]
    Insecure,
    /// TLS files given for a URL without TLS; the scheme that has it, and another one
    /// that also does.
    #[error(
        "TLS files are set (REDIS_TLS_*_FILE), but the URL does not use TLS; use {0}://{or}",
        or = .1.map(|other| format!(" or {other}://")).unwrap_or_default()
    )]
    NotTls(&'static str, Option<&'static str>),
    /// A sentinel password given for a URL that names no sentinels.
    #[error(
        "a sentinel password was given (REDIS_SENTINEL_PASSWORD_FILE), but the URL names no \
         sentinels; use redis+sentinel://"
    )]
    SentinelPasswordWithoutSentinels,
    /// A `/`, `?` or `#` before the last `@`: a password written raw, not percent-encoded.
    #[error(
        "the user name or password holds a raw /, ? or #, which ends a URL's login; a \
         password in a URL must be percent-encoded (/ as %2F, @ as %40, : as %3A), or given \
         in REDIS_PASSWORD_FILE"
    )]
    RawSeparatorInLogin,
    /// A URL naming several servers with another scheme than its plain and TLS ones.
    #[error("the URL must start with {0}:// or {1}://")]
    WrongScheme(&'static str, &'static str),
    /// A query or fragment in a URL naming several servers, whose scheme is given.
    #[error("query parameters are not supported in a {0}:// URL")]
    Query(&'static str),
    /// A URL naming several servers that names none; what they are (`sentinel host`).
    #[error("the URL names no {0}")]
    NoHosts(&'static str),
    /// Two commas with nothing between them in the host list.
    #[error("the host list has an empty entry")]
    EmptyHostEntry,
    /// An entry of the host list that is not `host[:port]`, and why.
    #[error("{0:?} is not host[:port] ({1})")]
    NotHostPort(String, url::ParseError),
    /// An entry of the host list with a port but no host.
    #[error("{0:?} names no host")]
    EntryNamesNoHost(String),
    /// A Sentinel URL without the master's name.
    #[error("the URL names no master; write the master's name after the hosts: …/mymaster")]
    NoMaster,
    /// A Sentinel URL with more than the master's name and a database in its path.
    #[error("too many path segments; write …/master-name or …/master-name/db")]
    TooManyPathSegments,
    /// A Cluster URL with a path: a cluster has database 0 only.
    #[error("a cluster has only database 0; the URL takes no path")]
    ClusterPath,
}
