//! The address policy for article URLs (DESIGN §6): URLs found inside feeds are not trusted,
//! so pages on loopback, private, link-local and similar addresses are refused — after DNS
//! resolution and on every redirect hop — unless inside `allowed_networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// Why an address is refused, when it is.
pub fn refusal(ip: IpAddr, allowed: &[IpNet]) -> Option<&'static str> {
    if allowed.iter().any(|net| net.contains(&ip)) {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if a == 0 || ip.is_broadcast() {
        Some("unspecified")
    } else if ip.is_multicast() || a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d reaches the IPv4 address: never trust it as IPv6.
        return refusal_v4(v4).or(Some("IPv4-mapped"));
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if seg[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] || seg[0..3] == [0x64, 0xff9b, 1] {
        Some("NAT64")
    } else if ip.is_multicast() {
        Some("reserved")
    } else {
        None
    }
}

/// The error a refused address or URL turns into.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Checks what can be checked on a URL before any connection: the scheme, and the host
/// when it is an IP literal (those never reach the resolver).
pub fn check_url(url: &Url, allowed: &[IpNet]) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused(format!(
            "refused {url}: only http and https pages are fetched"
        )));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(Refused(format!("refused {url}: no host"))),
    };
    match refusal(ip, allowed) {
        Some(why) => Err(Refused(format!("refused {url}: {ip} is a {why} address"))),
        None => Ok(()),
    }
}

/// Resolves `url`'s host and checks every address, for a request a proxy will make: the
/// proxy connects wherever the name points, so one refused address refuses the URL.
pub async fn check_resolved(url: &Url, allowed: &[IpNet]) -> Result<(), Refused> {
    check_url(url, allowed)?;
    let Some(url::Host::Domain(host)) = url.host() else {
        // An IP literal was checked by `check_url`.
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Refused(format!("cannot resolve {host}: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(Refused(format!("{host} has no address")));
    }
    for a in &found {
        if let Some(why) = refusal(a.ip(), allowed) {
            return Err(Refused(format!(
                "refused {host}: it resolves to {}, a {why} address",
                a.ip()
            )));
        }
    }
    Ok(())
}

/// A DNS resolver that drops refused addresses, and fails when none is left.
pub struct PolicyResolver {
    pub allowed: Arc<Vec<IpNet>>,
    /// Names resolved without the policy: the proxies the config names (trusted, like feeds).
    pub exempt: Vec<String>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        let exempt = self.exempt.iter().any(|e| e.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let mut refused = None;
            let ok: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match refusal(a.ip(), &allowed) {
                    Some(why) => {
                        refused = Some((a.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            if ok.is_empty() {
                let message = match refused {
                    Some((ip, why)) => {
                        format!("refused {host}: it resolves to {ip}, a {why} address")
                    }
                    None => format!("{host} has no address"),
                };
                return Err(Box::new(Refused(message)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expected: Option<&str>) {
        let ip: IpAddr = ip.parse().expect("test address");
        assert_eq!(refusal(ip, &[]), expected, "{ip}");
    }

    #[test]
    fn refuses_internal_ranges_and_allows_public_ones() {
        check("127.0.0.2", Some("loopback"));
        check("10.1.2.3", Some("private"));
        check("172.16.0.1", Some("private"));
        check("192.168.1.1", Some("private"));
        check("169.254.169.254", Some("link-local"));
        check("100.64.0.1", Some("shared (CGNAT)"));
        check("0.0.0.0", Some("unspecified"));
        check("::1", Some("loopback"));
        check("fd00::1", Some("unique-local"));
        check("fe80::1", Some("link-local"));
        check("64:ff9b::7f00:1", Some("NAT64"));
        check("::ffff:127.0.0.1", Some("loopback"));
        check("::ffff:8.8.8.8", Some("IPv4-mapped"));
        check("93.184.216.34", None);
        check("2606:2800:220:1::1", None);
        check("100.128.0.1", None);
    }

    #[test]
    fn allowed_networks_exempt_exactly_their_addresses() {
        let allowed: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        assert_eq!(refusal("127.0.0.1".parse().expect("ip"), &allowed), None);
        assert_eq!(
            refusal("127.0.0.2".parse().expect("ip"), &allowed),
            Some("loopback")
        );
    }

    #[test]
    fn literal_hosts_and_schemes_are_checked_on_the_url() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(check_url(&u("http://127.0.0.2:8080/a"), &[]).is_err());
        assert!(check_url(&u("http://[::1]/a"), &[]).is_err());
        assert!(check_url(&u("ftp://example.com/a"), &[]).is_err());
        assert!(check_url(&u("https://example.com/a"), &[]).is_ok());
    }
}
