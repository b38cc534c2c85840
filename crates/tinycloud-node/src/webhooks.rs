//! Webhooks: delivery settings, signatures, callback URL rules and the checked delivery
//! client. The dispatcher that runs deliveries over the app state is `delivery`.
//!
//! Deliveries are at-least-once, in order per subscription, signed, retried with backoff,
//! persisted (a restart resumes where it stopped), dead-lettered after the last attempt.
//!
//! Each subscription keeps a cursor into its space's event log; the dispatcher sends the next
//! matching event, advances the cursor on a 2xx, and otherwise schedules a retry. Deliveries
//! carry the reference's headers — `X-TinyCloud-Delivery-Id`, `-Event-Id`, `-Subscription-Id`,
//! `X-TinyCloud-Signature: sha256=<hex HMAC-SHA256(secret, body)>` — plus
//! `X-TinyCloud-Timestamp` and `X-TinyCloud-Signature-V2: sha256=<hex HMAC(secret, ts "." body)>`
//! so receivers can refuse replays. Secrets are stored sealed (AES-256-GCM, node-derived key).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::hooks::Scope;
use crate::store::WebhookRow;

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Attempts per event before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before retry n (the last value repeats).
    pub backoff: Vec<Duration>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Allow `http://` and private/loopback destinations (local development and tests).
    pub allow_private: bool,
    /// Most active subscriptions per space.
    pub max_per_space: usize,
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex HMAC-SHA256(secret, data)>`.
pub fn signature(secret: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(data);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether a callback may connect to `ip`: only globally routable unicast addresses. Refused:
/// private, loopback, link-local, unspecified, broadcast, multicast, CGNAT, benchmarking,
/// documentation and reserved ranges, cloud metadata addresses, and every IPv6 form that
/// carries or reaches an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`) unless the IPv4 address inside is itself public; Teredo, local-use NAT64
/// and the rest of `2001::/23` are refused outright. IPv6 outside `2000::/3` is not global
/// unicast and is refused (deny by default).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    let refused = a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10 (incl. Alibaba metadata)
        || (a == 169 && b == 254) // link local, incl. 169.254.169.254 metadata
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (NAT64 discovery, Oracle metadata)
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
        || v4 == Ipv4Addr::new(168, 63, 129, 16); // Azure host/metadata endpoint
    !refused
}

fn public_v6(v6: Ipv6Addr) -> bool {
    let seg = v6.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // IPv4-mapped ::ffff:0:0/96: the connection goes to the IPv4 address.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return public_v4(v4);
    }
    // ::/96 (unspecified, loopback, deprecated IPv4-compatible): never.
    if seg[..6].iter().all(|s| *s == 0) {
        return false;
    }
    // NAT64 well-known prefix 64:ff9b::/96: reaches the embedded IPv4 address.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return public_v4(embedded(seg[6], seg[7]));
    }
    // 6to4 2002::/16: relays to the IPv4 address in bits 16..48.
    if seg[0] == 0x2002 {
        return public_v4(embedded(seg[1], seg[2]));
    }
    let global_unicast = (seg[0] & 0xe000) == 0x2000; // 2000::/3
                                                      // 2001::/23 (Teredo, benchmarking, ORCHID…) and 2001:db8::/32 (documentation).
    let ietf_or_doc = seg[0] == 0x2001 && (seg[1] < 0x0200 || seg[1] == 0x0db8);
    let refused = ietf_or_doc || (seg[0] & 0xfff0) == 0x3ff0; // documentation 3fff::/20
    global_unicast && !refused
}

/// The checks of a callback URL that need no network: https (or http when private
/// destinations are allowed), no credentials or fragment, a host, and — unless allowed — no
/// IP-literal host outside the public ranges ([`is_public`]). Run at registration and again
/// before every delivery.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid callback URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("callback URL must use https".to_owned()),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("callback URL must not contain credentials".to_owned());
    }
    if u.fragment().is_some() {
        return Err("callback URL must not contain a fragment".to_owned());
    }
    if let Some(ip) = literal_ip(&u)? {
        if !allow_private && !is_public(ip) {
            return Err(format!("callback address {ip} is not a public address"));
        }
    }
    Ok(u)
}

/// The host of a URL when it is an IP literal (the URL parser has already normalized every
/// IPv4 spelling, e.g. `0x7f.1` or `2130706433`, to dotted form); `None` for a name.
fn literal_ip(u: &reqwest::Url) -> Result<Option<IpAddr>, String> {
    let host = u
        .host_str()
        .ok_or_else(|| "callback URL needs a host".to_owned())?;
    Ok(host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<IpAddr>()
        .ok())
}

/// Resolves `host` once and returns its addresses, refusing the name (unless private
/// destinations are allowed) when any of them is not public.
async fn resolve_checked(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}"));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "callback host {host} resolves to {}, which is not a public address",
                bad.ip()
            ));
        }
    }
    Ok(addrs)
}

/// Checks a callback URL at registration: [`check_url`], then (unless private destinations
/// are allowed) one resolution of a named host, so the registrant learns early that it points
/// somewhere private. Only for authorized callers: outsiders must not get a DNS oracle.
pub async fn validate_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let u = check_url(url, allow_private)?;
    if !allow_private && literal_ip(&u)?.is_none() {
        resolve_checked(u.host_str().unwrap_or_default(), allow_private).await?;
    }
    Ok(u)
}

/// The delivery client's resolver: each connection resolves the callback host once, here,
/// and connects only to the addresses this returns, so a name that changes its answer (DNS
/// rebinding) can never lead a delivery to an address that was not checked.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), allow_private).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries go through: no redirects, no proxy (the connection goes to the
/// checked address itself), and the checking resolver.
pub fn delivery_client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .build()
}

/// The subscription scope a webhook row stands for.
pub fn scope_of(w: &WebhookRow) -> Scope {
    Scope {
        space: w.space.clone(),
        service: w.service.clone(),
        path_prefix: w.path_prefix.clone(),
        abilities: w.abilities.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn address_classifier_table() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "100.100.100.200",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.0.192",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "168.63.129.16",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:0",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::c0a8:101",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "::ffff:255.255.255.255",
        ];
        for a in refused {
            let ip: IpAddr = a.parse().unwrap();
            assert!(!is_public(ip), "{a} must be refused");
        }
        let allowed = [
            "8.8.8.8",
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.1.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:200::1",
        ];
        for a in allowed {
            let ip: IpAddr = a.parse().unwrap();
            assert!(is_public(ip), "{a} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_in_every_spelling_are_classified() {
        for url in [
            "https://[::127.0.0.1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:7f00:1]/x",
            "https://[64:ff9b::7f00:1]/x",
            "https://[64:ff9b::127.0.0.1]/x",
            "https://[2002:7f00:1::]/x",
            "https://[fd00:ec2::254]/latest",
            "https://[fe80::1%25eth0]/x",
            "https://0x7f.1/x",
            "https://2130706433/x",
            "https://0177.0.0.1/x",
            "https://127.1/x",
            "https://0/x",
            "https://169.254.169.254/latest",
        ] {
            let r = check_url(url, false);
            assert!(r.is_err(), "{url} must be refused: {r:?}");
        }
        assert!(check_url("https://8.8.8.8/x", false).is_ok());
        assert!(check_url("https://[2606:4700:4700::1111]/x", false).is_ok());
        assert!(check_url("https://example.com/x", false).is_ok());
    }

    #[tokio::test]
    async fn delivery_client_never_connects_to_a_name_that_resolves_privately() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(2), listener.accept())
                .await
                .is_ok()
        });
        let err = delivery_client(false)
            .unwrap()
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("not a public address"),
            "{err:?}"
        );
        assert!(!accepted.await.unwrap(), "no connection was made");
        // With private destinations allowed the same client setup connects.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            delivery_client(true)
                .unwrap()
                .post(format!("http://localhost:{port}/hook"))
                .send(),
        )
        .await;
        assert!(accepted.await.unwrap());
    }

    #[tokio::test]
    async fn url_rules() {
        assert!(validate_url("http://example.com/x", false).await.is_err());
        assert!(validate_url("https://user:pw@example.com/x", false)
            .await
            .is_err());
        assert!(validate_url("https://127.0.0.1/x", false).await.is_err());
        assert!(validate_url("https://[::1]/x", false).await.is_err());
        assert!(validate_url("https://10.1.2.3/x", false).await.is_err());
        assert!(validate_url("https://169.254.169.254/latest", false)
            .await
            .is_err());
        assert!(validate_url("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(validate_url("ftp://x/y", true).await.is_err());
        assert!(validate_url("https://localhost/x", false).await.is_err());
    }
}
