//! The demo chat page at `/` (`assets/chat.html`, embedded) and the two client libraries it
//! loads, served from `[sockjs] client_dir` when configured.
//!
//! The page is rendered once at start: the endpoint path (the first `[websocket] paths` entry),
//! whether SockJS is on, and the library URLs are injected into it. The libraries are the stock
//! `sockjs-client` and `@stomp/stompjs` npm packages; nothing of theirs is in this repository.
//! Only two fixed files are served, so no request path ever reaches the file system:
//!
//! | request | file |
//! |---|---|
//! | `GET /lib/sockjs.min.js` | `<client_dir>/sockjs-client/dist/sockjs.min.js` |
//! | `GET /lib/stomp.umd.min.js` | `<client_dir>/@stomp/stompjs/bundles/stomp.umd.min.js` |
//!
//! Without `client_dir` (or when the file is missing) they answer 404 and the page (and the
//! SockJS iframe page) use the public CDN URLs instead.

use bytes::Bytes;
use http::{Response, StatusCode, header};

use crate::config::Config;
use crate::http::{Body, full, text};

/// The page, with `__CONFIG__`, `__SOCKJS_URL__` and `__STOMPJS_URL__` to fill in.
const TEMPLATE: &str = include_str!("../assets/chat.html");

/// Largest library file served (the real ones are well under 100 KiB).
const MAX_LIBRARY_BYTES: u64 = 4 << 20;

/// The `/lib/` files: request name → path below `client_dir`.
const LIBRARIES: [(&str, &str); 2] = [
    ("sockjs.min.js", "sockjs-client/dist/sockjs.min.js"),
    (
        "stomp.umd.min.js",
        "@stomp/stompjs/bundles/stomp.umd.min.js",
    ),
];

/// The rendered page, or `None` when the chat app is off or there is no endpoint.
pub(crate) fn render(config: &Config) -> Option<Bytes> {
    if !config.chat.enabled {
        return None;
    }
    let endpoint = config.websocket.paths.first()?;
    let page_config = serde_json::json!({
        "endpoint": endpoint,
        "sockjs": config.sockjs.enabled,
    });
    // JSON inside a <script> element: `<` escaped so that no `</script>` can end it early.
    let json = page_config.to_string().replace('<', "\\u003c");
    let page = TEMPLATE
        .replace(
            "__SOCKJS_URL__",
            &html_attribute(&config.sockjs.effective_client_url()),
        )
        .replace(
            "__STOMPJS_URL__",
            &html_attribute(&config.sockjs.stompjs_url()),
        )
        .replace("__CONFIG__", &json);
    Some(Bytes::from(page))
}

/// Escapes a value for a double-quoted HTML attribute.
fn html_attribute(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page as an HTTP response.
pub(crate) fn response(page: Bytes) -> Response<Body> {
    let mut r = Response::new(full(page));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// Answers `GET /lib/<name>`: one of the two fixed files from `client_dir`, else 404.
pub(crate) async fn client_library(config: &Config, name: &str) -> Response<Body> {
    let Some(dir) = &config.sockjs.client_dir else {
        return text(
            StatusCode::NOT_FOUND,
            "not found (no [sockjs] client_dir configured)\n",
        );
    };
    let Some((_, relative)) = LIBRARIES.iter().find(|(n, _)| *n == name) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let path = dir.join(relative);
    let too_big = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() => m.len() > MAX_LIBRARY_BYTES,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found (not installed in client_dir)\n",
            );
        }
    };
    if too_big {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "library file too large\n",
        );
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut r = Response::new(full(bytes));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/javascript; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "not found (not readable)\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_carries_endpoint_and_library_urls() {
        let config = Config::default();
        let page = render(&config).unwrap();
        let page = std::str::from_utf8(&page).unwrap();
        assert!(page.contains(r#""endpoint":"/chat""#), "{page}");
        assert!(page.contains(crate::config::SOCKJS_CDN_URL));
        assert!(page.contains(crate::config::STOMPJS_CDN_URL));
        assert!(!page.contains("__"), "every placeholder filled");
        for id in [
            "id=\"name\"",
            "id=\"text\"",
            "id=\"send\"",
            "id=\"messages\"",
            "id=\"state\"",
            "id=\"transport\"",
        ] {
            assert!(page.contains(id), "{id}");
        }

        let mut config = Config::default();
        config.sockjs.client_dir = Some("nm".into());
        config.websocket.paths = vec!["/a</script>\"".into()];
        let page = render(&config).unwrap();
        let page = std::str::from_utf8(&page).unwrap();
        assert!(page.contains("src=\"/lib/sockjs.min.js\""));
        assert!(page.contains("src=\"/lib/stomp.umd.min.js\""));
        assert!(
            page.contains(r#""endpoint":"/a\u003c/script>\"""#),
            "{page}"
        );

        config.chat.enabled = false;
        assert!(render(&config).is_none());
    }

    #[test]
    fn attribute_escaping() {
        assert_eq!(html_attribute("a\"b<c>&'"), "a&quot;b&lt;c&gt;&amp;&#39;");
    }
}
