//! Where to find the Redis master when Redis runs under Sentinel, and why it is looked up
//! again for every connection.
//!
//! Under Sentinel the master moves: a failover promotes a replica, and an old master that
//! comes back is demoted a few seconds later. The Redis client keeps talking to whatever
//! address it was opened on, so an address must never be remembered. Each new connection
//! asks all the sentinels at once which server is the master now (the first answer wins,
//! so one dead or black-holed sentinel costs nothing), opens a connection to that server
//! and sends `ROLE` on it: only a connection whose server says `master` is handed out. A
//! sentinel with an outdated view, a promotion still under way, or a restarted stale master
//! all end in an error for that attempt, which the caller retries.

use std::time::Duration;

use redis::{ErrorKind, RedisConnectionInfo, RedisError, RedisResult, Role};

use super::connection::{self, Connection, NodeAddress};
use super::error::TargetError;
use super::node_set::{NodeSet, UrlForm, detail_of, explained, first_to_answer, parse_multi_host};

/// The URL that names sentinels instead of a Redis server; over TLS, TLS to the sentinels
/// and to the master they name. A sentinel listens on 26379 unless the URL says otherwise.
pub const URL_FORM: UrlForm = UrlForm("redis+sentinel", "rediss+sentinel", "sentinel host", 26379);

/// The sentinels that watch one master, and how to log in to the Redis servers they name.
///
/// Built from `redis+sentinel://[user:password@]host1[:port],host2[:port],…/master-name[/db]`.
/// The URL's credentials and database are for the Redis servers (the data); sentinels that
/// require a password of their own get it from [`Self::set_sentinel_password`].
#[derive(Clone)]
pub struct Sentinels {
    /// The sentinels, and the login and TLS for the master they name (TLS to sentinels and
    /// master alike, `rediss+sentinel://`).
    pub nodes: NodeSet,
    sentinel_password: Option<String>,
    master_name: String,
}

impl Sentinels {
    /// Validates a `redis+sentinel://` URL; the error is a reason for a person, without
    /// the URL (which may hold a password).
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let url = parse_multi_host(url, &URL_FORM)?;
        let mut segments = url.path.split('/');
        let master_name = segments.next().filter(|name| !name.is_empty());
        let master_name = master_name.ok_or(TargetError::NoMaster)?;
        let db = segments.next().unwrap_or_default();
        if segments.any(|extra| !extra.is_empty()) {
            return Err(TargetError::TooManyPathSegments);
        }
        Ok(Self {
            nodes: url.into_node_set(db)?,
            sentinel_password: None,
            master_name: master_name.to_owned(),
        })
    }

    /// The password that sentinels started with `requirepass` ask for.
    pub fn set_sentinel_password(&mut self, password: &str) {
        self.sentinel_password = Some(password.to_owned());
    }

    /// The name the sentinels know the master by.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// Opens a connection to the server the sentinels name as master right now, and
    /// returns it only once that server's `ROLE` says `master`.
    ///
    /// Asking the sentinels is bounded by the standard connect and reply timeouts; the
    /// connection to the master gets `extra_reply_time` on top of them.
    pub async fn connect_to_master(&self, extra_reply_time: Duration) -> RedisResult<Connection> {
        let (host, port) = self.master_address().await?;
        let master = format!("{host}:{port}");
        let client = self.nodes.data_client(&host, port)?;
        let checked = async {
            let mut connection = connection::open(&client, extra_reply_time).await?;
            let role: Role = redis::cmd("ROLE").query_async(connection.redis()).await?;
            Ok((connection, role))
        };
        let (connection, role) = checked
            .await
            .map_err(|err| explained(err, "the master the sentinels named failed", &master))?;
        if !matches!(role, Role::Primary { .. }) {
            return Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "the server the sentinels named is not a master",
                format!("{master} answers ROLE as {}", role_name(&role)),
            )));
        }
        Ok(connection)
    }

    /// Asks every sentinel at once; the first address any of them gives wins.
    async fn master_address(&self) -> RedisResult<NodeAddress> {
        let asks = self
            .nodes
            .addresses
            .iter()
            .map(|(host, port)| self.ask(host, *port));
        first_to_answer(asks, "no sentinel named the master", detail_of).await
    }

    async fn ask(&self, host: &str, port: u16) -> RedisResult<NodeAddress> {
        // No `CLIENT SETINFO`, as on the data nodes: a sentinel's ACL need not grant it.
        let mut info = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = &self.sentinel_password {
            info = info.set_password(password);
        }
        let sentinel = format!("sentinel {host}:{port}");
        let answer = async {
            let client = self.nodes.client(host, port, info)?;
            let mut connection = connection::open(&client, Duration::ZERO).await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master_name)
                .query_async::<Option<NodeAddress>>(connection.redis())
                .await
        };
        let answer = answer
            .await
            .map_err(|err| explained(err, "a sentinel failed", &sentinel))?;
        answer.ok_or_else(|| {
            RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "unknown master",
                format!("{sentinel} monitors no master named {:?}", self.master_name),
            ))
        })
    }
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Primary { .. } => "master",
        Role::Replica { .. } => "replica",
        Role::Sentinel { .. } => "sentinel",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_ports_master_name_and_db() {
        let sentinels =
            Sentinels::parse("redis+sentinel://s1,s2:26380,[::1]:7000,10.0.0.3/mymaster/2")
                .unwrap();
        assert_eq!(
            sentinels.nodes.addresses,
            [
                ("s1".to_owned(), URL_FORM.3),
                ("s2".to_owned(), 26380),
                ("::1".to_owned(), 7000),
                ("10.0.0.3".to_owned(), URL_FORM.3),
            ]
        );
        assert_eq!(sentinels.master_name, "mymaster");
        assert_eq!(sentinels.nodes.redis_settings().db(), 2);
    }

    #[test]
    fn credentials_in_the_url_are_for_the_data_nodes() {
        let sentinels = Sentinels::parse("redis+sentinel://app:p%40ss@s1,s2/mymaster").unwrap();
        let settings = sentinels.nodes.redis_settings();
        assert_eq!(settings.username(), Some("app"));
        assert_eq!(settings.password(), Some("p@ss"));
        assert_eq!(settings.db(), 0);
        assert_eq!(sentinels.sentinel_password, None);
    }

    #[test]
    fn a_password_from_a_file_overrides_the_url_password() {
        let mut sentinels = Sentinels::parse("redis+sentinel://:old@s1/mymaster").unwrap();
        sentinels.nodes.set_redis_password("new");
        sentinels.set_sentinel_password("watchers");
        assert_eq!(sentinels.nodes.redis_settings().password(), Some("new"));
        assert_eq!(sentinels.sentinel_password.as_deref(), Some("watchers"));
    }

    #[test]
    fn rejects_incomplete_urls_with_a_reason() {
        let database =
            RedisError::from((ErrorKind::InvalidClientConfig, "Invalid database number"));
        crate::redis::node_set::assert_refused(
            Sentinels::parse,
            &[
                (
                    "redis+sentinel:///mymaster",
                    TargetError::NoHosts("sentinel host"),
                ),
                ("redis+sentinel://s1,s2", TargetError::NoMaster),
                ("redis+sentinel://s1/", TargetError::NoMaster),
                (
                    "redis+sentinel://s1/mymaster/abc",
                    TargetError::Client(database),
                ),
                (
                    "redis+sentinel://s1/mymaster/0/1",
                    TargetError::TooManyPathSegments,
                ),
                (
                    "redis://s1/mymaster",
                    TargetError::WrongScheme(URL_FORM.0, URL_FORM.1),
                ),
            ],
        );
    }
}
