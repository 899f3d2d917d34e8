//! The Redis server the worker talks to: a validated `redis://` URL (`rediss://` over TLS,
//! `valkey://` and `valkeys://` alike), a `redis+sentinel://` URL naming the sentinels
//! that know the master, or a `redis+cluster://` URL naming a cluster's seed nodes; an
//! optional password from a file, and a printable form that never shows the password.
//!
//! Operators paste URLs with credentials into environment variables, and those URLs end up
//! in logs and error messages. Every way this type can be printed goes through [`redact`].

use std::fmt;
use std::io;
use std::time::Duration;

use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult};

use super::cluster::{self, Cluster};
use super::connection::{self, Connection, NodeAddress, data_node_settings, describe};
use super::error::TargetError;
use super::node_set::NodeSet;
use super::sentinel::{self, Sentinels};
use super::tls::{self, TlsSettings};
use crate::escape::escaped;

/// Where to reach Redis, with its credentials, ready to hand to the Redis client.
///
/// `Display` and `Debug` print the URL with the password masked, so the value can be
/// logged freely.
#[derive(Clone)]
pub struct RedisTarget {
    topology: Topology,
    shown: String,
}

/// How the server the worker writes to is found: at a fixed address, through Redis
/// Sentinel, or in a Redis Cluster. The worker, the health check and `acl-rule` all read
/// this one value: it decides how a connection is opened and the commands sent besides
/// `INCR` and `PING`. No `Debug`: a client holds the password.
#[derive(Clone)]
pub enum Topology {
    /// A `redis://` URL: one server at a fixed address, its client built once.
    Fixed(Client),
    /// A `redis+sentinel://` URL: the master the sentinels name, checked with `ROLE`.
    Sentinel(Sentinels),
    /// A `redis+cluster://` URL: the key's node, learnt from `MOVED` and `ASK`.
    Cluster(Cluster),
}

/// The client of a fixed address, or the node set of a Sentinel or Cluster URL.
enum Reached<'a> {
    Fixed(&'a Client),
    Nodes(&'a NodeSet),
}

/// What a URL does not say, given beside it: the passwords from files and the TLS files.
#[derive(Debug, Default, Clone, Copy)]
pub struct TargetSettings<'a> {
    /// Overrides any password in the URL (the `REDIS_PASSWORD_FILE` rule).
    pub password: Option<&'a str>,
    /// The sentinels' own password (`REDIS_SENTINEL_PASSWORD_FILE`); refused for a URL
    /// that names no sentinels, where it would be silently ignored.
    pub sentinel_password: Option<&'a str>,
    /// A private CA, a client certificate; refused for a URL without TLS, where they would
    /// be silently ignored.
    pub tls: Option<&'a TlsSettings>,
}

impl RedisTarget {
    /// Validates `url` and the `settings` given beside it, each client built once.
    ///
    /// The error's text is a reason for a person, without the URL itself: the caller names
    /// the setting and shows the [`redact`]ed value.
    pub fn new(url: &str, settings: &TargetSettings<'_>) -> Result<Self, TargetError> {
        let topology = match url.split_once("://").map(|(scheme, _)| scheme) {
            Some(scheme) if sentinel::URL_FORM.has_scheme(scheme) => {
                let mut sentinels = Sentinels::parse(url).map_err(|reason| in_url(url, reason))?;
                if let Some(password) = settings.sentinel_password {
                    sentinels.set_sentinel_password(password);
                }
                with_settings(&mut sentinels.nodes, settings)?;
                Topology::Sentinel(sentinels)
            }
            Some(scheme) if cluster::URL_FORM.has_scheme(scheme) => {
                let mut cluster = Cluster::parse(url).map_err(|reason| in_url(url, reason))?;
                refuse_sentinel_password(settings)?;
                with_settings(&mut cluster.nodes, settings)?;
                Topology::Cluster(cluster)
            }
            _ => {
                let info =
                    fixed_info(url, settings.password).map_err(|reason| in_url(url, reason))?;
                refuse_sentinel_password(settings)?;
                Topology::Fixed(fixed_client(info, settings.tls)?)
            }
        };
        Ok(Self {
            topology,
            shown: escaped(&redact(url)),
        })
    }

    /// How the server is found, with what finding it needs.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The credentials, database and protocol used on the Redis server, whichever way
    /// it is found: what the ACL rule must allow (`SELECT`), and what the tests of the
    /// password rules read.
    pub fn redis_settings(&self) -> &redis::RedisConnectionInfo {
        match self.reached() {
            Reached::Fixed(client) => client.get_connection_info().redis_settings(),
            Reached::Nodes(nodes) => nodes.redis_settings(),
        }
    }

    /// `err`, a failed connection to this target, for a log line: [`describe`]'s words;
    /// when Redis refused the client certificate, what to do about it
    /// ([`tls::client_certificate_hint`]); and when the failure is the one a TLS client and
    /// a plain-TCP server (or the other way round) give, a word on that. A TLS handshake
    /// sent to a plain port gets no answer (Redis waits for the end of a command line); a
    /// plain command sent to a TLS port has the connection closed at once.
    pub fn describe_connect_failure(&self, err: &RedisError) -> String {
        let described = describe(err);
        if let Some(hint) = tls::client_certificate_hint(err) {
            return format!("{described}; {hint}");
        }
        let (plain, with_tls) = match self.topology() {
            Topology::Fixed(_) => ("redis", "rediss"),
            Topology::Sentinel(_) => (sentinel::URL_FORM.0, sentinel::URL_FORM.1),
            Topology::Cluster(_) => (cluster::URL_FORM.0, cluster::URL_FORM.1),
        };
        match (self.uses_tls(), connection::io_error_kind(err)) {
            (true, Some(io::ErrorKind::TimedOut)) => format!(
                "{described}; no TLS handshake completed: if this port serves plain TCP \
                 (TLS on one side only), use {plain}://"
            ),
            (
                false,
                Some(
                    io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof,
                ),
            ) => format!(
                "{described}; the server closed the connection at once: if this port serves \
                 TLS (TLS on one side only), use {with_tls}://"
            ),
            _ => described,
        }
    }

    /// True when the URL asked for TLS.
    fn uses_tls(&self) -> bool {
        match self.reached() {
            Reached::Fixed(client) => matches!(
                client.get_connection_info().addr(),
                ConnectionAddr::TcpTls { .. }
            ),
            Reached::Nodes(nodes) => nodes.uses_tls(),
        }
    }

    /// What the login and transport are read from: the fixed address's client, or the node
    /// set a Sentinel or Cluster URL names, which share them.
    fn reached(&self) -> Reached<'_> {
        match &self.topology {
            Topology::Fixed(client) => Reached::Fixed(client),
            Topology::Sentinel(sentinels) => Reached::Nodes(&sentinels.nodes),
            Topology::Cluster(cluster) => Reached::Nodes(&cluster.nodes),
        }
    }

    /// Opens one connection to the Redis that this target names right now; its replies
    /// may take `extra_reply_time` beyond the standard timeout (see
    /// [`connection::open`]).
    ///
    /// Every connection the worker and the health check make goes through here, so under
    /// Sentinel each one goes to the current master, never to a remembered address. Under
    /// Cluster it goes to whichever answers first of `key_owner` (the node that last said
    /// it serves the key) and the seed nodes.
    pub async fn connect(
        &self,
        extra_reply_time: Duration,
        key_owner: Option<&NodeAddress>,
    ) -> RedisResult<Connection> {
        match &self.topology {
            Topology::Fixed(client) => connection::open(client, extra_reply_time).await,
            Topology::Sentinel(sentinels) => sentinels.connect_to_master(extra_reply_time).await,
            Topology::Cluster(cluster) => cluster.connect(extra_reply_time, key_owner).await,
        }
    }
}

/// `reason`, why `url` was refused; when its login holds a character that ends a URL's
/// login part, that is the reason given instead: a password written raw, as generated ones
/// often are, makes the rest of the URL read wrong.
fn in_url(url: &str, reason: TargetError) -> TargetError {
    if login_holds_a_separator(url) {
        return TargetError::RawSeparatorInLogin;
    }
    reason
}

/// Gives `nodes` the password and TLS files of `settings`, each when given.
fn with_settings(nodes: &mut NodeSet, settings: &TargetSettings<'_>) -> Result<(), TargetError> {
    if let Some(password) = settings.password {
        nodes.set_redis_password(password);
    }
    nodes.set_tls(settings.tls)
}

/// Refuses a sentinel password for a URL that names no sentinels.
fn refuse_sentinel_password(settings: &TargetSettings<'_>) -> Result<(), TargetError> {
    match settings.sentinel_password {
        Some(_) => Err(TargetError::SentinelPasswordWithoutSentinels),
        None => Ok(()),
    }
}

/// True when the login of `url` (between `://` and the last `@`) holds a character that
/// ends a URL's login part: a password written raw, as generated ones often are.
fn login_holds_a_separator(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.rsplit_once('@')
        .is_some_and(|(login, _)| login.contains(['/', '?', '#']))
}

/// The connection info of a `redis://` URL, with `password` overriding the URL's.
fn fixed_info(url: &str, password: Option<&str>) -> Result<ConnectionInfo, TargetError> {
    let parsed = url::Url::parse(url).map_err(TargetError::NotAUrl)?;
    // Valkey's own names for the same protocol; the client reads them alike.
    if !matches!(parsed.scheme(), "redis" | "valkey" | "rediss" | "valkeys") {
        return Err(TargetError::UnsupportedScheme(parsed.scheme().to_owned()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::NoHost);
    }
    let info: ConnectionInfo = parsed.into_connection_info()?;
    if let ConnectionAddr::TcpTls { .. } = info.addr() {
        tls::refuse_insecure(&info)?;
    }
    let mut settings = data_node_settings(info.redis_settings().clone())?;
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    Ok(info.set_redis_settings(settings))
}

/// The client for a `redis://` URL's `info`, over TLS with `tls` (or the built-in roots)
/// when the URL says so.
fn fixed_client(info: ConnectionInfo, tls: Option<&TlsSettings>) -> Result<Client, TargetError> {
    let uses_tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    match tls {
        Some(_) if !uses_tls => Err(TargetError::NotTls("rediss", Some("valkeys"))),
        tls => tls::url_client(info, tls.unwrap_or(&TlsSettings::default())),
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisTarget").field(&self.shown).finish()
    }
}

/// Masks every credential in a Redis URL, even one that does not parse, so it can be
/// echoed in an error message.
///
/// The user-info part becomes `user:***` (or `***` when it has no colon, since some
/// people write the password there alone), and `pass=`/`password=` query values become
/// `***`.
pub fn redact(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(authority_start);
    let mut shown = head.to_owned();
    let rest = match rest.rfind('@') {
        Some(at) => {
            let user_info = &rest[..at];
            match user_info.split_once(':') {
                Some((user, _password)) => shown.push_str(&format!("{user}:***")),
                None => shown.push_str("***"),
            }
            &rest[at..]
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            shown.push_str(path);
            shown.push('?');
            shown.push_str(&redact_query(query));
        }
        None => shown.push_str(rest),
    }
    shown
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_parameter(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_parameter(name: &str) -> bool {
    name.eq_ignore_ascii_case("pass") || name.eq_ignore_ascii_case("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_redis_urls() {
        for url in [
            "redis://redis:6379",
            "redis://127.0.0.1",
            "redis://[::1]:6380/2",
            "redis://:secret@redis:6379/0",
            "redis://user:secret@redis",
            "valkey://valkey:6379/1",
        ] {
            assert!(
                RedisTarget::new(url, &TargetSettings::default()).is_ok(),
                "{url} should be accepted"
            );
        }
    }

    #[test]
    fn a_redis_url_host_is_never_idna_mapped() {
        // Why Cargo.toml can pin url's IDNA back end to the one without Unicode tables:
        // only special schemes (https:, …) map a host through IDNA.
        for scheme in ["redis", "rediss", "valkey", "valkeys"] {
            let url = url::Url::parse(&format!("{scheme}://bücher.example:6379")).unwrap();
            assert_eq!(url.host_str(), Some("b%C3%BCcher.example"), "{scheme}");
        }
    }

    #[test]
    fn accepts_tls_urls_and_refuses_to_turn_verification_off() {
        for url in ["rediss://redis:6380", "valkeys://u:pw@valkey/2"] {
            assert!(
                RedisTarget::new(url, &TargetSettings::default()).is_ok(),
                "{url} should be accepted"
            );
        }
        let err = RedisTarget::new("rediss://redis:6380/#insecure", &TargetSettings::default())
            .unwrap_err();
        assert_eq!(err, TargetError::Insecure);
    }

    #[test]
    fn tls_files_are_refused_for_a_url_without_tls() {
        for (url, with_tls) in [
            (
                "redis://redis",
                TargetError::NotTls("rediss", Some("valkeys")),
            ),
            (
                "redis+sentinel://s1/mymaster",
                TargetError::NotTls(sentinel::URL_FORM.1, None),
            ),
            (
                "redis+cluster://n1",
                TargetError::NotTls(cluster::URL_FORM.1, None),
            ),
        ] {
            let tls = TlsSettings::default();
            let settings = TargetSettings {
                tls: Some(&tls),
                ..TargetSettings::default()
            };
            let err = RedisTarget::new(url, &settings).unwrap_err();
            assert_eq!(err, with_tls, "{url}: {err}");
        }
    }

    #[test]
    fn rejects_other_schemes() {
        for (url, scheme) in [
            ("http://redis:6379", "http"),
            ("unix:///tmp/redis.sock", "unix"),
            ("valkey+unix:///tmp/valkey.sock", "valkey+unix"),
        ] {
            let err = RedisTarget::new(url, &TargetSettings::default()).unwrap_err();
            assert_eq!(err, TargetError::UnsupportedScheme(scheme.to_owned()));
        }
    }

    #[test]
    fn rejects_urls_that_do_not_parse() {
        for url in [
            "",
            "redis",
            "redis:6379x",
            "redis://redis:99999",
            "redis://",
        ] {
            assert!(
                RedisTarget::new(url, &TargetSettings::default()).is_err(),
                "{url:?} should be rejected"
            );
        }
    }

    #[test]
    fn a_raw_slash_in_a_url_password_asks_for_percent_encoding() {
        for url in [
            "redis://u:p@ss/w:rd@host:6379",
            "redis://:pa/ss@host",
            "redis+sentinel://u:p/w@s1/mymaster",
            "redis+cluster://u:p?w@n1",
        ] {
            let err = RedisTarget::new(url, &TargetSettings::default()).err();
            assert_eq!(err, Some(TargetError::RawSeparatorInLogin), "{url}");
        }
        let message = TargetError::RawSeparatorInLogin.to_string();
        assert!(message.contains("percent-encoded"), "{message}");
        assert!(message.contains("REDIS_PASSWORD_FILE"), "{message}");
        let encoded = "redis://u:p%40ss%2Fw%3Ard@host:6379";
        let target = RedisTarget::new(encoded, &TargetSettings::default()).unwrap();
        assert_eq!(target.redis_settings().password(), Some("p@ss/w:rd"));
    }

    #[test]
    fn rejects_a_bad_database_number() {
        let err =
            RedisTarget::new("redis://redis:6379/abc", &TargetSettings::default()).unwrap_err();
        assert!(matches!(err, TargetError::Client(_)), "{err}");
        assert!(err.to_string().contains("database"), "{err}");
    }

    #[test]
    fn rejects_a_negative_database_index() {
        let err =
            RedisTarget::new("redis://redis:6379/-1", &TargetSettings::default()).unwrap_err();
        assert_eq!(err, TargetError::NegativeDatabase);
    }

    #[test]
    fn password_argument_overrides_the_url_password() {
        let settings = TargetSettings {
            password: Some("from-file"),
            ..TargetSettings::default()
        };
        let target = RedisTarget::new("redis://:from-url@redis", &settings).unwrap();
        assert_eq!(target.redis_settings().password(), Some("from-file"));
    }

    #[test]
    fn sentinel_urls_name_sentinels_and_keep_credentials_for_the_data_nodes() {
        let url = "redis+sentinel://app:hunter2@s1,s2:26380/mymaster/1";
        let settings = TargetSettings {
            password: Some("from-file"),
            sentinel_password: Some("watchers"),
            tls: None,
        };
        let target = RedisTarget::new(url, &settings).unwrap();
        let Topology::Sentinel(sentinels) = target.topology() else {
            panic!("a redis+sentinel:// URL should name sentinels");
        };
        assert_eq!(sentinels.master_name(), "mymaster");
        assert_eq!(target.redis_settings().password(), Some("from-file"));
        assert_eq!(target.redis_settings().db(), 1);
        assert_eq!(
            target.to_string(),
            "redis+sentinel://app:***@s1,s2:26380/mymaster/1"
        );
    }

    #[test]
    fn a_sentinel_password_needs_a_sentinel_url() {
        let settings = TargetSettings {
            sentinel_password: Some("watchers"),
            ..TargetSettings::default()
        };
        let err = RedisTarget::new("redis://redis", &settings).unwrap_err();
        assert_eq!(err, TargetError::SentinelPasswordWithoutSentinels);
    }

    #[test]
    fn printing_never_shows_the_password() {
        let target = RedisTarget::new(
            "redis://user:hunter2@redis:6379",
            &TargetSettings::default(),
        )
        .unwrap();
        assert_eq!(target.to_string(), "redis://user:***@redis:6379");
        assert_eq!(
            format!("{target:?}"),
            r#"RedisTarget("redis://user:***@redis:6379")"#
        );
    }

    #[test]
    fn redacts_credentials_in_any_shape() {
        let cases = [
            ("redis://redis:6379", "redis://redis:6379"),
            ("redis://:pw@redis:6379", "redis://:***@redis:6379"),
            ("redis://u:pw@redis", "redis://u:***@redis"),
            ("redis://pw@redis", "redis://***@redis"),
            ("redis://u:p@w@redis:bad", "redis://u:***@redis:bad"),
            (":pw@redis", ":***@redis"),
            (
                "redis+unix:///s.sock?db=1&pass=pw",
                "redis+unix:///s.sock?db=1&pass=***",
            ),
        ];
        for (raw, shown) in cases {
            assert_eq!(redact(raw), shown, "redacting {raw}");
        }
    }
}
