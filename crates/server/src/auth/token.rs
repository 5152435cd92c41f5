//! Where a transport finds a bearer token outside STOMP: an `Authorization: Bearer` header or an
//! `access_token` query parameter (browsers cannot set headers on a WebSocket or SockJS
//! request). The token goes to the broker session ([`Session::set_token`]) before CONNECT and
//! is never logged; neither is the query string that carried it.
//!
//! [`Session::set_token`]: switchboard_broker::Session::set_token

use http::{HeaderMap, Uri, header};

/// The longest token accepted from a request (a larger one is ignored: CONNECT then fails as
/// if none had been sent). JWTs are usually well under 2 KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The bearer token of a request: the `Authorization: Bearer` header if present, else the
/// `access_token` query parameter (percent-decoded). `None` if neither is there, or it is
/// empty, not ASCII or longer than [`MAX_TOKEN_LEN`].
pub(crate) fn request_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let from_header = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    let token = from_header.or_else(|| query_param(uri.query()?, "access_token"))?;
    (!token.is_empty() && token.len() <= MAX_TOKEN_LEN && token.is_ascii()).then_some(token)
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))?
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn bearer_header_wins_over_the_query() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        assert_eq!(
            request_token(&h, &uri("/chat?access_token=zzz")).as_deref(),
            Some("abc.def.ghi")
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  x "),
        );
        assert_eq!(request_token(&h, &uri("/chat")).as_deref(), Some("x"));
    }

    #[test]
    fn access_token_query_parameter() {
        let h = HeaderMap::new();
        assert_eq!(
            request_token(&h, &uri("/chat?a=1&access_token=a%2Eb.c&b=2")).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(request_token(&h, &uri("/chat?access_token=")), None);
        assert_eq!(request_token(&h, &uri("/chat?access_token=%zz")), None);
        assert_eq!(request_token(&h, &uri("/chat?token=x")), None);
        assert_eq!(request_token(&h, &uri("/chat")), None);
        let long = format!("/chat?access_token={}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(request_token(&h, &uri(&long)), None);
    }

    #[test]
    fn other_authorization_schemes_are_not_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Z3Vlc3Q6Z3Vlc3Q="),
        );
        assert_eq!(request_token(&h, &uri("/chat")), None);
        assert_eq!(
            request_token(&h, &uri("/chat?access_token=q")).as_deref(),
            Some("q")
        );
    }
}
