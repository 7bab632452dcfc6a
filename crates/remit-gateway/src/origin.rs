//! `Host` and `Origin` on the MCP endpoint, against DNS rebinding (MCP
//! streamable HTTP transport: a server must validate `Origin` and answer
//! 403 when it is present and not allowed).
//!
//! Allowed: the configured public URL's origin, the origins in
//! `[gateway] allowed_origins`, and, when the public URL is on loopback,
//! any loopback origin (`http(s)://localhost|127.0.0.0/8|[::1]`, any
//! port). A request without `Origin` (every non-browser client) is judged
//! by `Host` alone. `Host` must name the public URL's host and port, the
//! host of an allowed origin, or a loopback address (a client that
//! addressed this machine directly): a page on `attacker.example`
//! rebinding its name to this gateway's address sends
//! `Host: attacker.example` and is refused.

use axum::http::{header, HeaderMap};

/// One origin, normalized: lowercase scheme and host, explicit port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// `scheme://host[:port]` (a path is ignored); `None` when it is not one.
    fn parse(text: &str) -> Option<Self> {
        let uri: axum::http::Uri = text.trim().parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        Some(Self {
            host: uri.host()?.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(default),
            scheme,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What this gateway accepts, built from its public URL and configuration.
#[derive(Debug)]
pub struct Allowed {
    public: Option<Origin>,
    extra: Vec<Origin>,
    loopback: bool,
}

impl Allowed {
    /// The origins allowed for a gateway at `public_url` with the
    /// configured `allowed_origins` (entries that are not origins are
    /// ignored; the settings loader refuses them at start).
    pub fn new(public_url: &str, allowed_origins: &[String]) -> Self {
        let public = Origin::parse(public_url);
        let loopback = public.as_ref().is_some_and(|o| is_loopback(&o.host));
        Self {
            extra: allowed_origins
                .iter()
                .filter_map(|o| Origin::parse(o))
                .collect(),
            public,
            loopback,
        }
    }

    fn origin(&self, origin: &Origin) -> bool {
        self.public.as_ref() == Some(origin)
            || self.extra.contains(origin)
            || (self.loopback && is_loopback(&origin.host))
    }

    fn host(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        // A loopback Host means the client addressed this machine
        // directly; DNS rebinding always presents the attacker's own name
        // (a browser sends the name it resolved), so a loopback Host is
        // never a rebinding, whatever the public URL (a load balancer's
        // health check or a local client behind one).
        if is_loopback(&host) {
            return true;
        }
        let same = |o: &Origin| o.host == host && port.unwrap_or(default_port(o)) == o.port;
        self.public.as_ref().is_some_and(same) || self.extra.iter().any(same)
    }
}

fn default_port(origin: &Origin) -> u16 {
    if origin.scheme == "https" {
        443
    } else {
        80
    }
}

/// Why a request was refused before authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `Host` is missing or names another site.
    #[error("the Host header does not name this gateway (possible DNS rebinding); use the gateway's public URL")]
    Host,
    /// `Origin` is present and not allowed.
    #[error("requests from this Origin are not allowed (possible DNS rebinding); an operator can allow it with [gateway] allowed_origins")]
    Origin,
}

impl Refused {
    /// The rule id refusals of this kind are counted under.
    pub fn rule(&self) -> &'static str {
        match self {
            Refused::Host => "gw-host-refused",
            Refused::Origin => "gw-origin-refused",
        }
    }
}

/// Checks `Host` and `Origin` of a request.
pub fn check(allowed: &Allowed, headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<axum::http::uri::Authority>().ok())
        .ok_or(Refused::Host)?;
    if !allowed.host(host.host(), host.port_u16()) {
        return Err(Refused::Host);
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => Ok(()),
        (Some(value), None) => {
            let origin = value
                .to_str()
                .ok()
                .and_then(Origin::parse)
                .ok_or(Refused::Origin)?;
            if allowed.origin(&origin) {
                Ok(())
            } else {
                Err(Refused::Origin)
            }
        }
        (Some(_), Some(_)) => Err(Refused::Origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_rebound_host_or_a_foreign_origin_is_refused() {
        let public = Allowed::new("https://remit.example.com", &[]);
        assert_eq!(check(&public, &headers("remit.example.com", None)), Ok(()));
        assert_eq!(
            check(&public, &headers("remit.example.com:443", None)),
            Ok(())
        );
        assert_eq!(
            check(&public, &headers("attacker.example", None)),
            Err(Refused::Host)
        );
        // A client that addressed this machine directly is no rebinding.
        assert_eq!(check(&public, &headers("127.0.0.1:8080", None)), Ok(()));
        // A loopback look-alike name is not loopback.
        assert_eq!(
            check(&public, &headers("127.0.0.1.attacker.example", None)),
            Err(Refused::Host)
        );
        assert_eq!(
            check(
                &public,
                &headers("remit.example.com", Some("https://evil.example"))
            ),
            Err(Refused::Origin)
        );
        assert_eq!(
            check(&public, &headers("remit.example.com", Some("null"))),
            Err(Refused::Origin)
        );
        assert_eq!(
            check(
                &public,
                &headers("remit.example.com", Some("https://remit.example.com"))
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &public,
                &headers("remit.example.com", Some("http://remit.example.com"))
            ),
            Err(Refused::Origin)
        );
    }

    #[test]
    fn loopback_origins_are_allowed_when_the_gateway_is_on_loopback() {
        let local = Allowed::new("http://127.0.0.1:8080", &[]);
        assert_eq!(
            check(
                &local,
                &headers("localhost:8080", Some("http://localhost:3000"))
            ),
            Ok(())
        );
        assert_eq!(check(&local, &headers("[::1]:8080", None)), Ok(()));
        assert_eq!(
            check(
                &local,
                &headers("127.0.0.1:8080", Some("http://evil.example"))
            ),
            Err(Refused::Origin)
        );
        let configured = Allowed::new("http://127.0.0.1:8080", &["https://app.example".into()]);
        assert_eq!(
            check(
                &configured,
                &headers("127.0.0.1:8080", Some("https://app.example"))
            ),
            Ok(())
        );
    }
}
