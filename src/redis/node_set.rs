//! What Sentinel and Cluster share: a URL naming several servers (`redis+sentinel://`,
//! `redis+cluster://`, and their TLS forms), read into a set of nodes with the login,
//! database and TLS for the data nodes behind them, and asking all of them at once.
//!
//! `redis://` URLs are read by the Redis client; these forms are not, so they are read here,
//! by one set of rules, the way a `redis://` URL would be read. What differs between the
//! two (a master's name, the cluster's single database, what each node is asked) is in
//! `sentinel` and `cluster`.

use std::net::Ipv6Addr;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::{Client, ErrorKind, IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult};

use super::connection::{NodeAddress, data_node_settings, io_error_kind, is_refusal, node_client};
use super::error::TargetError;
use super::tls::{self, TlsSettings};

/// A URL naming several servers, split into its parts.
#[derive(Debug)]
pub struct MultiHostUrl<'a> {
    /// Whether it was the TLS form of the scheme.
    pub tls: bool,
    /// `user:password` before the `@`, still percent-encoded.
    pub user_info: Option<&'a str>,
    /// The hosts and ports, in the URL's order.
    pub nodes: Vec<NodeAddress>,
    /// What follows the hosts' `/`, without it.
    pub path: &'a str,
    /// The TLS form of the scheme, for the error that refuses TLS files without it.
    tls_scheme: &'static str,
}

impl MultiHostUrl<'_> {
    /// The node set, with the data nodes' login from the URL and `db` (empty: 0).
    pub fn into_node_set(self, db: &str) -> Result<NodeSet, TargetError> {
        Ok(NodeSet {
            addresses: self.nodes,
            redis: data_node_login(self.user_info, db)?,
            tls: self.tls.then(TlsSettings::default),
            tls_scheme: self.tls_scheme,
        })
    }
}

/// The servers a URL names and how to reach the data nodes behind them.
#[derive(Clone)]
pub struct NodeSet {
    /// The hosts and ports, in the URL's order.
    pub addresses: Vec<NodeAddress>,
    redis: RedisConnectionInfo,
    /// TLS to every node (the URL's TLS scheme); `None` for plain TCP.
    tls: Option<TlsSettings>,
    tls_scheme: &'static str,
}

impl NodeSet {
    /// Makes `password` the one for the data nodes, overriding the URL's (the
    /// `REDIS_PASSWORD_FILE` rule).
    pub fn set_redis_password(&mut self, password: &str) {
        self.redis = self.redis.clone().set_password(password);
    }

    /// Uses `settings`, when given, for TLS to every node; refused when the URL asked for
    /// no TLS.
    pub fn set_tls(&mut self, settings: Option<&TlsSettings>) -> Result<(), TargetError> {
        tls::use_settings(&mut self.tls, settings, self.tls_scheme)
    }

    /// True when the URL asked for TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Credentials, database and protocol used on the data nodes.
    pub fn redis_settings(&self) -> &RedisConnectionInfo {
        &self.redis
    }

    /// The client for the node at `host:port`, logging in with `login`, over the URL's
    /// transport.
    pub fn client(&self, host: &str, port: u16, login: RedisConnectionInfo) -> RedisResult<Client> {
        node_client(host, port, login, self.tls.as_ref())
    }

    /// The client for the data node at `host:port`, with the data nodes' login.
    pub fn data_client(&self, host: &str, port: u16) -> RedisResult<Client> {
        self.client(host, port, self.redis.clone())
    }
}

/// The first of `attempts` to succeed, run all at once, so one dead or black-holed node
/// costs nothing; when all fail, the error of one that answered (a refusal, such as a
/// wrong password, or a reply), else the last one's, kept in kind and introduced by
/// `none_answered`, with `detail` of it. A node that answered says what is wrong; one that
/// timed out after it would hide that behind "timed out".
pub async fn first_to_answer<T, F>(
    attempts: impl IntoIterator<Item = F>,
    none_answered: &'static str,
    detail: fn(&RedisError) -> String,
) -> RedisResult<T>
where
    F: Future<Output = RedisResult<T>>,
{
    let mut pending: FuturesUnordered<F> = attempts.into_iter().collect();
    let mut kept: Option<RedisError> = None;
    while let Some(attempt) = pending.next().await {
        match attempt {
            Ok(answer) => return Ok(answer),
            Err(err) if kept.as_ref().is_some_and(answered) && !answered(&err) => {}
            Err(err) => kept = Some(err),
        }
    }
    // A node set is never empty (its URL's rules refuse one): this only keeps it total.
    let err = kept.unwrap_or_else(|| RedisError::from((ErrorKind::Client, "no node to ask")));
    let detail = detail(&err);
    Err(in_context(err, none_answered, detail))
}

/// True when `err` came from a node that answered: it refused the login or the command,
/// or replied; false when it could not be reached or did not answer in time.
fn answered(err: &RedisError) -> bool {
    is_refusal(err) || io_error_kind(err).is_none()
}

/// `err` with the server it came from, keeping its kind (the caller tells a refusal, such
/// as a wrong password, from a server that is down by the kind).
pub fn explained(err: RedisError, what: &'static str, server: &str) -> RedisError {
    let detail = format!("{server}: {err}");
    in_context(err, what, detail)
}

/// `err` introduced by `what` and `detail`, as redis-rs prints an error of its own
/// (`what - Kind: detail`). An I/O error (a refused or timed-out connection, a failed TLS
/// handshake) stays one, of the same I/O kind, with `err` as its source, so a TLS refusal
/// or a timeout is still told by its type behind the context; any other keeps its kind.
fn in_context(err: RedisError, what: &'static str, detail: String) -> RedisError {
    match io_error_kind(&err) {
        Some(io_kind) if err.kind() == ErrorKind::Io => {
            let context = Context { what, detail, err };
            RedisError::from(std::io::Error::new(io_kind, context))
        }
        _ => RedisError::from((err.kind(), what, detail)),
    }
}

/// What a Sentinel or Cluster connection adds to an I/O error: what failed and where.
#[derive(Debug, thiserror::Error)]
#[error("{what} - {kind:?}: {detail}", kind = ErrorKind::Io)]
struct Context {
    what: &'static str,
    detail: String,
    #[source]
    err: RedisError,
}

/// The detail of `err` as [`in_context`] or redis-rs gave it; empty when it has none.
pub fn detail_of(err: &RedisError) -> String {
    match tls::cause::<Context>(err) {
        Some(context) => context.detail.clone(),
        None => err.detail().unwrap_or_default().to_owned(),
    }
}

/// How a URL naming several servers is written: its plain scheme, its TLS scheme, what
/// its hosts are called in an error (`"sentinel host"`), and a host's port unless the URL
/// gives one.
#[derive(Debug, Clone, Copy)]
pub struct UrlForm(
    pub &'static str,
    pub &'static str,
    pub &'static str,
    pub u16,
);

impl UrlForm {
    /// Whether `scheme` is this form's plain or TLS scheme.
    pub fn has_scheme(&self, scheme: &str) -> bool {
        scheme == self.0 || scheme == self.1
    }
}

/// Splits `url`, written in `form`, naming at least one host.
pub fn parse_multi_host<'a>(url: &'a str, form: &UrlForm) -> Result<MultiHostUrl<'a>, TargetError> {
    let UrlForm(plain, with_tls, hosts, default_port) = *form;
    let (rest, tls) = match url.split_once("://") {
        Some((scheme, rest)) if scheme == plain => (rest, false),
        Some((scheme, rest)) if scheme == with_tls => (rest, true),
        _ => return Err(TargetError::WrongScheme(plain, with_tls)),
    };
    if rest.contains(['?', '#']) {
        return Err(TargetError::Query(plain));
    }
    let (user_info, rest) = match rest.rsplit_once('@') {
        Some((user_info, rest)) => (Some(user_info), rest),
        None => (None, rest),
    };
    let (list, path) = rest.split_once('/').unwrap_or((rest, ""));
    if list.is_empty() {
        return Err(TargetError::NoHosts(hosts));
    }
    let nodes = list
        .split(',')
        .map(|node| parse_node(node, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MultiHostUrl {
        tls,
        user_info,
        nodes,
        path,
        tls_scheme: with_tls,
    })
}

/// One `host[:port]` of a list, `default_port` when it names none; IPv6 addresses go in
/// brackets, as in any URL.
fn parse_node(node: &str, default_port: u16) -> Result<NodeAddress, TargetError> {
    if node.is_empty() {
        return Err(TargetError::EmptyHostEntry);
    }
    let parsed = url::Url::parse(&format!("redis://{node}"))
        .map_err(|err| TargetError::NotHostPort(node.to_owned(), err))?;
    // By the URL standard, which `url` follows, a `redis://` host is opaque: an IPv4
    // address is a domain like a name, and an empty host is none.
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv6(ip)) => Ipv6Addr::to_string(&ip),
        _ => return Err(TargetError::EntryNamesNoHost(node.to_owned())),
    };
    Ok((host, parsed.port().unwrap_or(default_port)))
}

/// The data nodes' login and database, read the way a `redis://` URL with the same
/// user info and path would be, and completed by [`data_node_settings`], so every kind of
/// URL follows one set of rules.
fn data_node_login(user_info: Option<&str>, db: &str) -> Result<RedisConnectionInfo, TargetError> {
    let login = user_info
        .map(|user_info| format!("{user_info}@"))
        .unwrap_or_default();
    let info = format!("redis://{login}data-node/{db}").into_connection_info()?;
    data_node_settings(info.redis_settings().clone())
}

/// Checks that `parse` refuses each URL of `cases` for the reason given with it.
#[cfg(test)]
pub fn assert_refused<T>(parse: fn(&str) -> Result<T, TargetError>, cases: &[(&str, TargetError)]) {
    for (url, reason) in cases {
        let Err(err) = parse(url) else {
            panic!("{url} accepted");
        };
        assert_eq!(&err, reason, "{url}: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_node_that_answered_is_reported_over_one_that_timed_out_in_either_order() {
        let timed_out = || RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let wrong_password = || RedisError::from((ErrorKind::AuthenticationFailed, "refused"));
        // A refusal inside an I/O error, as tokio-rustls hands it over.
        let untrusted = || {
            let unknown =
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
            RedisError::from(io)
        };
        // A reply that refuses nothing: the sentinel knows no such master.
        let unknown_master = || RedisError::from((ErrorKind::MasterNameNotFoundBySentinel, "no"));
        let answers: [fn() -> RedisError; 3] = [wrong_password, untrusted, unknown_master];
        for answer in answers {
            for attempts in [[answer(), timed_out()], [timed_out(), answer()]] {
                let attempts = attempts.map(|err| std::future::ready(Err::<(), _>(err)));
                let err = first_to_answer(attempts, "none answered", detail_of)
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), answer().kind(), "{err}");
                assert_ne!(io_error_kind(&err), Some(std::io::ErrorKind::TimedOut));
            }
        }
        let both_silent = [timed_out(), timed_out()].map(|err| std::future::ready(Err(err)));
        let err = first_to_answer::<(), _>(both_silent, "none answered", detail_of).await;
        assert_eq!(
            io_error_kind(&err.unwrap_err()),
            Some(std::io::ErrorKind::TimedOut)
        );
    }

    #[test]
    fn context_keeps_an_io_error_s_kind_cause_and_words() {
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, expired);
        let err = explained(RedisError::from(io), "a cluster node failed", "n1:7000");
        assert_eq!(
            err.to_string(),
            "a cluster node failed - Io: n1:7000: invalid peer certificate: Expired"
        );
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(tls::is_certificate_refusal(&err));
        assert_eq!(io_error_kind(&err), Some(std::io::ErrorKind::InvalidData));
        assert_eq!(
            detail_of(&err),
            "n1:7000: invalid peer certificate: Expired"
        );
        let refused = RedisError::from((ErrorKind::AuthenticationFailed, "refused"));
        let err = explained(refused, "a sentinel failed", "s1:26379");
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed);
        assert_eq!(
            err.to_string(),
            "a sentinel failed - AuthenticationFailed: s1:26379: refused - AuthenticationFailed"
        );
    }

    #[test]
    fn rejects_host_lists_with_a_reason() {
        fn parse(url: &str) -> Result<NodeSet, TargetError> {
            parse_multi_host(url, &UrlForm("redis+x", "rediss+x", "x host", 1))?.into_node_set("")
        }
        let bad_port =
            |node: &str| TargetError::NotHostPort(node.to_owned(), url::ParseError::InvalidPort);
        assert_refused(
            parse,
            &[
                ("redis+x:///path", TargetError::NoHosts("x host")),
                ("redis+x://:pw@/path", TargetError::NoHosts("x host")),
                ("redis+x://s1,,s2/path", TargetError::EmptyHostEntry),
                (
                    "redis+x://s1, /path",
                    TargetError::EntryNamesNoHost(" ".to_owned()),
                ),
                ("redis+x://s1:99999/path", bad_port("s1:99999")),
                ("redis+x://s1:port/path", bad_port("s1:port")),
                (
                    "redis+x://s1/path?protocol=resp3",
                    TargetError::Query("redis+x"),
                ),
                (
                    "redis://s1/path",
                    TargetError::WrongScheme("redis+x", "rediss+x"),
                ),
                (
                    "rediss+xs://s1/path",
                    TargetError::WrongScheme("redis+x", "rediss+x"),
                ),
            ],
        );
    }
}
