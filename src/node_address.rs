//! The parts that URLs naming several servers share (`redis+sentinel://`,
//! `redis+cluster://`, and their TLS forms): the scheme, a comma-separated list of
//! `host[:port]`, and the login and database for the data nodes behind them.
//!
//! `redis://` URLs are read by the Redis client; these forms are not, so they are read here,
//! by one set of rules, the way a `redis://` URL would be read.

use std::net::{Ipv4Addr, Ipv6Addr};

use redis::{IntoConnectionInfo, RedisConnectionInfo};

use crate::connection::data_node_settings;

/// A URL naming several servers, split into its parts.
#[derive(Debug)]
pub struct MultiHostUrl<'a> {
    /// Whether it was the TLS form of the scheme.
    pub tls: bool,
    /// `user:password` before the `@`, still percent-encoded.
    pub user_info: Option<&'a str>,
    /// The hosts and ports, in the URL's order.
    pub nodes: Vec<(String, u16)>,
    /// What follows the hosts' `/`, without it.
    pub path: &'a str,
}

/// Splits `url`, whose scheme must be `schemes.0` (plain) or `schemes.1` (TLS), naming
/// at least one `hosts` (`"sentinel host"`) with `default_port`.
pub fn parse_multi_host<'a>(
    url: &'a str,
    schemes: (&str, &str),
    hosts: &str,
    default_port: u16,
) -> Result<MultiHostUrl<'a>, String> {
    let (plain, with_tls) = schemes;
    let (rest, tls) = match url.split_once("://") {
        Some((scheme, rest)) if scheme == plain => (rest, false),
        Some((scheme, rest)) if scheme == with_tls => (rest, true),
        _ => {
            return Err(format!(
                "the URL must start with {plain}:// or {with_tls}://"
            ));
        }
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "query parameters are not supported in a {plain}:// URL"
        ));
    }
    let (user_info, rest) = match rest.rsplit_once('@') {
        Some((user_info, rest)) => (Some(user_info), rest),
        None => (None, rest),
    };
    let (list, path) = rest.split_once('/').unwrap_or((rest, ""));
    if list.is_empty() {
        return Err(format!("the URL names no {hosts}"));
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
    })
}

/// One `host[:port]` of a list, `default_port` when it names none; IPv6 addresses go in
/// brackets, as in any URL.
fn parse_node(node: &str, default_port: u16) -> Result<(String, u16), String> {
    if node.is_empty() {
        return Err("the host list has an empty entry".to_owned());
    }
    let parsed = url::Url::parse(&format!("redis://{node}"))
        .map_err(|err| format!("{node:?} is not host[:port] ({err})"))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => Ipv4Addr::to_string(&ip),
        Some(url::Host::Ipv6(ip)) => Ipv6Addr::to_string(&ip),
        _ => return Err(format!("{node:?} names no host")),
    };
    Ok((host, parsed.port().unwrap_or(default_port)))
}

/// The data nodes' login and database, read the way a `redis://` URL with the same
/// user info and path would be, and completed by [`data_node_settings`], so every kind of
/// URL follows one set of rules.
pub fn data_node_login(user_info: Option<&str>, db: &str) -> Result<RedisConnectionInfo, String> {
    let login = user_info
        .map(|user_info| format!("{user_info}@"))
        .unwrap_or_default();
    let info = format!("redis://{login}data-node/{db}")
        .into_connection_info()
        .map_err(|err| err.to_string())?;
    data_node_settings(info.redis_settings().clone())
}
