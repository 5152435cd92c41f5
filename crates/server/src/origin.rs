//! The WebSocket handshake's `Origin` check.
//!
//! Policy: a request without `Origin` (not a browser) is allowed; the same origin as the `Host`
//! header is always allowed; every origin in the configured list is allowed (`"*"` allows any);
//! when the list is empty, loopback origins (`localhost`, `127.0.0.0/8`, `[::1]`) are allowed too.

/// Whether a WebSocket upgrade with this `Origin` (and `Host`) may proceed.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" and other opaque origins
    };
    let scheme = scheme.to_ascii_lowercase();
    let origin_authority = normalize_authority(&scheme, authority);
    if let Some(host) = host {
        // The Host header carries no scheme: compare with default ports removed on both sides.
        let host_http = normalize_authority("http", host);
        let host_https = normalize_authority("https", host);
        if origin_authority == host_http || origin_authority == host_https {
            return true;
        }
    }
    allowed.is_empty() && is_loopback_host(host_part(&origin_authority))
}

/// Lower-cases an authority and drops the scheme's default port.
fn normalize_authority(scheme: &str, authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    let default_port = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => "",
    };
    match a.strip_suffix(default_port) {
        Some(stripped) if !default_port.is_empty() && !stripped.ends_with(':') => {
            stripped.to_owned()
        }
        _ => a,
    }
}

/// The host of an authority, without port (IPv6 brackets kept).
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") || host == "[::1]" {
        return true;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_is_allowed() {
        assert!(origin_allowed(None, Some("example.com"), &[]));
    }

    #[test]
    fn same_origin_is_allowed() {
        assert!(origin_allowed(
            Some("http://example.com"),
            Some("example.com"),
            &[]
        ));
        assert!(origin_allowed(
            Some("https://Example.com:443"),
            Some("example.com"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://example.com:8080"),
            Some("example.com:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            Some("http://example.com:8081"),
            Some("example.com:8080"),
            &[]
        ));
    }

    #[test]
    fn loopback_is_allowed_by_default_only() {
        assert!(origin_allowed(
            Some("http://localhost:3000"),
            Some("example.com"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://127.0.0.1:5173"),
            Some("example.com"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://[::1]:5173"),
            Some("example.com"),
            &[]
        ));
        let list = vec!["https://app.example".to_string()];
        assert!(!origin_allowed(
            Some("http://localhost:3000"),
            Some("example.com"),
            &list
        ));
    }

    #[test]
    fn foreign_origins_are_rejected_unless_listed() {
        assert!(!origin_allowed(
            Some("https://evil.example"),
            Some("example.com"),
            &[]
        ));
        assert!(!origin_allowed(Some("null"), Some("example.com"), &[]));
        let list = vec!["https://evil.example/".to_string()];
        assert!(origin_allowed(
            Some("https://evil.example"),
            Some("example.com"),
            &list
        ));
        assert!(origin_allowed(Some("null"), None, &["*".to_string()]));
        // a look-alike host is not loopback
        assert!(!origin_allowed(
            Some("http://127.0.0.1.evil.example"),
            None,
            &[]
        ));
    }
}
