//! Why a Redis URL, or a setting given beside it, cannot be used: one variant per rule, so
//! code and tests decide by the variant, and `Display` gives the reason a person reads
//! after the setting's name and value (`invalid REDIS_URL "…": <reason>`).
//!
//! It sits below every file of the Redis layer that reads a URL (`target`, `sentinel`,
//! `cluster`, `node_set`, `connection`, `tls`), so each of them returns it without a
//! conversion.

use std::fmt;

use redis::RedisError;

/// A Redis URL, or a setting given beside it, that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetError {
    /// The text is no URL at all.
    NotAUrl(url::ParseError),
    /// A scheme that names no Redis protocol this worker speaks.
    UnsupportedScheme(String),
    /// A `redis://` URL without a host.
    NoHost,
    /// The Redis client refused what the URL says (a database that is no number, …).
    Client(RedisError),
    /// A database index below 0.
    NegativeDatabase,
    /// `#insecure`, which would turn certificate verification off.
    Insecure,
    /// TLS files given for a URL without TLS; the scheme that has it, and another one
    /// that also does.
    NotTls(&'static str, Option<&'static str>),
    /// A sentinel password given for a URL that names no sentinels.
    SentinelPasswordWithoutSentinels,
    /// A `/`, `?` or `#` before the last `@`: a password written raw, not percent-encoded.
    RawSeparatorInLogin,
    /// A URL naming several servers with another scheme than its plain and TLS ones.
    WrongScheme(&'static str, &'static str),
    /// A query or fragment in a URL naming several servers, whose scheme is given.
    Query(&'static str),
    /// A URL naming several servers that names none; what they are (`sentinel host`).
    NoHosts(&'static str),
    /// Two commas with nothing between them in the host list.
    EmptyHostEntry,
    /// An entry of the host list that is not `host[:port]`, and why.
    NotHostPort(String, url::ParseError),
    /// An entry of the host list with a port but no host.
    EntryNamesNoHost(String),
    /// A Sentinel URL without the master's name.
    NoMaster,
    /// A Sentinel URL with more than the master's name and a database in its path.
    TooManyPathSegments,
    /// A Cluster URL with a path: a cluster has database 0 only.
    ClusterPath,
}

impl TargetError {
    /// The reason of a variant that carries nothing but itself.
    fn fixed_reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::NoHost => "the URL names no host",
            Self::NegativeDatabase => "the database index must be a non-negative integer",
            Self::Insecure => {
                "#insecure would turn off certificate verification, which this worker never \
                 does; trust a private CA with REDIS_TLS_CA_FILE instead"
            }
            Self::SentinelPasswordWithoutSentinels => {
                "a sentinel password was given (REDIS_SENTINEL_PASSWORD_FILE), but the URL \
                 names no sentinels; use redis+sentinel://"
            }
            Self::RawSeparatorInLogin => {
                "the user name or password holds a raw /, ? or #, which ends a URL's login; \
                 a password in a URL must be percent-encoded (/ as %2F, @ as %40, : as %3A), \
                 or given in REDIS_PASSWORD_FILE"
            }
            Self::EmptyHostEntry => "the host list has an empty entry",
            Self::NoMaster => {
                "the URL names no master; write the master's name after the hosts: …/mymaster"
            }
            Self::TooManyPathSegments => {
                "too many path segments; write …/master-name or …/master-name/db"
            }
            Self::ClusterPath => "a cluster has only database 0; the URL takes no path",
            _ => return None,
        })
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAUrl(err) => write!(f, "not a URL ({err})"),
            Self::UnsupportedScheme(scheme) => write!(
                f,
                "scheme {scheme:?} is not supported; use redis://, rediss://, valkey://, \
                 valkeys://, redis+sentinel:// or redis+cluster://"
            ),
            Self::Client(err) => write!(f, "{err}"),
            Self::NotTls(scheme, other) => {
                write!(
                    f,
                    "TLS files are set (REDIS_TLS_*_FILE), but the URL does not use TLS; \
                     use {scheme}://"
                )?;
                other.map_or(Ok(()), |other| write!(f, " or {other}://"))
            }
            Self::WrongScheme(plain, tls) => {
                write!(f, "the URL must start with {plain}:// or {tls}://")
            }
            Self::Query(plain) => {
                write!(f, "query parameters are not supported in a {plain}:// URL")
            }
            Self::NoHosts(hosts) => write!(f, "the URL names no {hosts}"),
            Self::NotHostPort(node, err) => write!(f, "{node:?} is not host[:port] ({err})"),
            Self::EntryNamesNoHost(node) => write!(f, "{node:?} names no host"),
            _ => f.write_str(self.fixed_reason().unwrap_or_default()),
        }
    }
}

impl std::error::Error for TargetError {}

impl From<RedisError> for TargetError {
    fn from(err: RedisError) -> Self {
        Self::Client(err)
    }
}
