//! Which addresses a webhook or a connector may call. Both URLs are chosen by
//! whoever holds a manage key, and the server calls them from inside the
//! network, so by default
//! only public addresses are allowed (OWASP's server-side request forgery
//! advice): the check is made when a webhook is created, and again on every
//! connection, through the resolver the delivery client uses, so a name that
//! later resolves somewhere private (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // IPv4-mapped addresses (::ffff:a.b.c.d) are how the system
            // names a connection to the IPv4 address itself.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = segments[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if segments[..6] == [0; 6] {
                // The rest reach an IPv4 address through a tunnel or a
                // translator somewhere on the way, whose far side this
                // server cannot see, so they are refused whatever they embed.
                Some("IPv4-compatible (deprecated tunnel)")
            } else if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
                Some("IPv4-translated (SIIT)")
            } else if first == 0x2002 {
                Some("6to4 tunnel")
            } else if segments[..2] == [0x2001, 0] {
                Some("Teredo tunnel")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xffc0 == 0xfec0 {
                Some("private (site-local)")
            } else if segments[..3] == [0x64, 0xff9b, 1] {
                Some("private (local-use NAT64)")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64: the IPv4 address it stands for decides.
                let o = v6.octets();
                non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if segments[..2] == [0x2001, 0x0db8] {
                Some("reserved for documentation")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("private (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("reserved")
    } else if a == 192 && b == 88 && ip.octets()[2] == 99 {
        Some("6to4 relay anycast")
    } else if ip.is_documentation() {
        Some("reserved for documentation")
    } else {
        None
    }
}

/// Refuses a URL whose host is, or resolves to, a non-public address (unless
/// `allow_private`), or does not resolve at all. The error completes "the URL …".
pub async fn check(
    url: &url::Url,
    allow_private: bool,
    allowed_by: AllowedBy,
) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let given = literal(url);
    let addresses: Vec<IpAddr> = match given {
        Some(ip) => vec![ip],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("names host {host}, which does not resolve"))?
            .map(|address| address.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("names host {host}, which does not resolve"));
    }
    if allow_private {
        return Ok(());
    }
    match addresses.iter().find_map(|ip| Some((ip, non_public(*ip)?))) {
        Some((ip, kind)) => Err(private_target(
            given.is_none().then_some(host),
            *ip,
            kind,
            allowed_by,
        )),
        None => Ok(()),
    }
}

/// The URL's host when it is an IP address, which no resolver is asked about.
pub fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Why `ip` may not be called; `host` is the name that resolved to it, `None`
/// when the URL gave the address itself.
fn private_target(host: Option<&str>, ip: IpAddr, kind: &str, allowed_by: AllowedBy) -> String {
    let resolves = match host {
        None => format!("names {ip}"),
        Some(host) => format!("names host {host}, which resolves to {ip}"),
    };
    let (who, unless) = match allowed_by {
        AllowedBy::Server => ("webhooks", "the server runs with --webhook-allow-private"),
        AllowedBy::Command => (
            "webhooks",
            "`webhooks add` is given --webhook-allow-private",
        ),
        AllowedBy::ConnectorServer => (
            "connectors",
            "the server runs with --connector-allow-private",
        ),
        AllowedBy::ConnectorCommand => (
            "the server's connectors",
            "it runs with --connector-allow-private",
        ),
    };
    format!(
        "{resolves}, {} address; {who} may only call public addresses unless {unless}",
        crate::domain::with_article(kind)
    )
}

/// Whose setting lets webhooks or connectors call private addresses, which a
/// refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedBy {
    /// The server's `--webhook-allow-private` (the API, deliveries).
    Server,
    /// The `webhooks add` command's own flag.
    Command,
    /// The server's `--connector-allow-private` (the API, fetches).
    ConnectorServer,
    /// The `feeds create|update --connector` commands' own flag.
    ConnectorCommand,
}

/// Why a call to a URL with an address for a host may not be made.
pub fn refuse_literal(
    url: &url::Url,
    allow_private: bool,
    allowed_by: AllowedBy,
) -> Option<String> {
    let ip = literal(url)?;
    let kind = non_public(ip).filter(|_| !allow_private)?;
    Some(format!(
        "the URL {}",
        private_target(None, ip, kind, allowed_by)
    ))
}

/// The outbound clients' resolver: the system's, keeping only public
/// addresses unless private ones are allowed.
pub struct PublicOnly {
    pub allow_private: bool,
    pub allowed_by: AllowedBy,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let (allow_private, allowed_by) = (self.allow_private, self.allowed_by);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| allow_private || non_public(address.ip()).is_none())
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(first)) => Err(private_target(
                    Some(&host),
                    first.ip(),
                    non_public(first.ip()).unwrap_or("non-public"),
                    allowed_by,
                )
                .into()),
                (true, None) => Err(format!("host {host} does not resolve").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::7f00:1",
            "fec0::1",
            "64:ff9b:1::1",
            // Tunnels and translators (6to4, Teredo, SIIT, IPv4-compatible,
            // the 6to4 relay), whatever IPv4 address they embed.
            "2002:0808:0808::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:0:808:808",
            "::ffff:0:7f00:1",
            "::808:808",
            "192.88.99.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(non_public(ip).is_some(), "{private} counted as public");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(non_public(ip), None, "{public}");
        }
    }

    #[tokio::test]
    async fn creation_refuses_private_targets_unless_allowed() {
        let parse = |text: &str| url::Url::parse(text).unwrap();
        let url = parse("http://127.0.0.1:9/hook");
        let error = check(&url, false, AllowedBy::Server).await.unwrap_err();
        assert_eq!(
            error,
            "names 127.0.0.1, a loopback address; webhooks may only call public addresses unless the server runs with --webhook-allow-private"
        );
        assert!(check(&url, true, AllowedBy::Server).await.is_ok());
        let named = parse("http://localhost:9/hook");
        let error = check(&named, false, AllowedBy::Server).await.unwrap_err();
        assert!(
            error.starts_with("names host localhost, which resolves to "),
            "{error}"
        );
        let literal6 = parse("http://[::1]:9/hook");
        assert!(check(&literal6, false, AllowedBy::Server)
            .await
            .unwrap_err()
            .starts_with("names ::1, a loopback"));
    }
}
