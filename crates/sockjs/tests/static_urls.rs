//! sockjs-protocol: BaseUrlGreeting, IframePage, InfoTest, Http10/Http11 `test_synchronous`.

mod common;
use common::*;

#[tokio::test]
async fn greeting() {
    let a = suite_server().await;
    for url in ["/echo", "/echo/"] {
        let r = get(a, url).await;
        assert_eq!(r.status(), 200);
        assert_content_type(&r.head, "text/plain;charset=UTF-8");
        assert_eq!(r.text(), "Welcome to SockJS!\n");
        assert!(r.get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn not_found() {
    let a = suite_server().await;
    for suffix in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
        assert_eq!(
            get(a, &format!("/echo{suffix}")).await.status(),
            404,
            "{suffix}"
        );
    }
}

async fn verify_iframe(a: std::net::SocketAddr, url: &str) -> Resp {
    let r = get(a, url).await;
    assert_eq!(r.status(), 200, "{url}");
    assert_content_type(&r.head, "text/html;charset=UTF-8");
    let cc = r.get("cache-control").unwrap();
    assert!(cc.contains("public") && cc.contains("max-age=31536000"));
    assert!(r.get("expires").is_some());
    assert!(r.get("etag").is_some());
    assert!(r.get("last-modified").is_none());
    assert!(r.get("set-cookie").is_none());
    let body = r.text();
    let body = body.trim();
    assert!(body.starts_with("<!DOCTYPE html>\n<html>\n<head>\n"));
    assert!(
        body.contains("    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n")
    );
    assert!(body.ends_with("</body>\n</html>"));
    let src = body
        .split("<script src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(src.starts_with('/') || src.starts_with("http"), "{src}");
    r
}

#[tokio::test]
async fn iframe_simple_versioned_and_queried_urls() {
    let a = suite_server().await;
    for suffix in [
        "/iframe.html",
        "/iframe-a.html",
        "/iframe-.html",
        "/iframe-0.1.2.html",
        "/iframe-0.1.2abc-dirty.2144.html",
        "/iframe-a.html?t=1234",
        "/iframe-0.1.2.html?t=123414",
        "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
    ] {
        verify_iframe(a, &format!("/echo{suffix}")).await;
    }
}

#[tokio::test]
async fn iframe_invalid_urls() {
    let a = suite_server().await;
    for suffix in [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/IFRAME",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
    ] {
        assert_eq!(
            get(a, &format!("/echo{suffix}")).await.status(),
            404,
            "{suffix}"
        );
    }
}

#[tokio::test]
async fn iframe_loads_the_configured_client_url() {
    let ep = switchboard_sockjs::SockJs::new(
        switchboard_sockjs::Config::default()
            .prefix("/x")
            .client_url("/static/sockjs.js"),
        echo,
    );
    let a = serve(vec![ep]).await;
    let r = verify_iframe(a, "/x/iframe.html").await;
    assert!(
        r.text()
            .contains("<script src=\"/static/sockjs.js\"></script>")
    );
}

#[tokio::test]
async fn iframe_cacheability() {
    let a = suite_server().await;
    let r1 = get(a, "/echo/iframe.html").await;
    let r2 = get(a, "/echo/iframe.html").await;
    let tag = r1.get("etag").unwrap();
    assert_eq!(Some(tag.clone()), r2.get("etag"));
    let r = request(
        a,
        "GET",
        "/echo/iframe.html",
        &[("If-None-Match", &tag)],
        b"",
    )
    .await;
    assert_eq!(r.status(), 304);
    assert!(r.get("content-type").is_none());
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn info_basic() {
    let a = suite_server().await;
    let r = request(a, "GET", "/echo/info", &[("Origin", "test")], b"").await;
    assert_eq!(r.status(), 200);
    assert_content_type(&r.head, "application/json;charset=UTF-8");
    assert!(r.get("set-cookie").is_none());
    assert_not_cached(&r.head);
    assert_cors(&r.head, Some("test"));
    assert_eq!(r.get("vary").as_deref(), Some("Origin"));
    let t = r.text();
    assert!(t.contains("\"websocket\":true"), "{t}");
    assert!(t.contains("\"cookie_needed\":false"), "{t}");
    assert!(t.contains("\"origins\":[\"*:*\"]"), "{t}");
    let entropy: u64 = t
        .split("\"entropy\":")
        .nth(1)
        .unwrap()
        .trim_end_matches('}')
        .parse()
        .unwrap();
    assert!(entropy <= u64::from(u32::MAX));
}

fn entropy(t: &str) -> u32 {
    t.split("\"entropy\":")
        .nth(1)
        .unwrap()
        .trim_end_matches('}')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn info_entropy_differs_per_call() {
    let a = suite_server().await;
    // Two equal 32-bit random values in a row are a 1 in 4 billion event; three are impossible.
    let e1 = entropy(&get(a, "/echo/info").await.text());
    let e2 = entropy(&get(a, "/echo/info").await.text());
    let e3 = entropy(&get(a, "/echo/info").await.text());
    assert!(e1 != e2 || e2 != e3);
}

#[tokio::test]
async fn info_options_and_null_origin() {
    let a = suite_server().await;
    assert_options(a, "/echo/info", "OPTIONS, GET").await;
    let r = request(
        a,
        "OPTIONS",
        "/echo/info",
        &[
            ("Origin", "null"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert!(r.status() == 204 || r.status() == 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.get("access-control-allow-origin").as_deref(),
        Some("null")
    );
}

#[tokio::test]
async fn info_without_origin_is_star_without_credentials() {
    let a = suite_server().await;
    let r = get(a, "/echo/info").await;
    assert_cors(&r.head, None);
}

#[tokio::test]
async fn info_disabled_websocket() {
    let a = suite_server().await;
    let r = get(a, "/disabled_websocket_echo/info").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().contains("\"websocket\":false"));
}

#[tokio::test]
async fn http10_synchronous_greeting() {
    let a = suite_server().await;
    let mut c = Conn::open(a).await;
    c.send("GET", "/echo", "1.0", &[("Connection", "Keep-Alive")], b"")
        .await;
    let h = c.head().await;
    assert_eq!(h.status, 200);
    assert!(h.get("transfer-encoding").is_none());
    match h.get("content-length") {
        None => {
            assert_eq!(h.get("connection").unwrap().to_lowercase(), "close");
            assert_eq!(c.body(&h).await, b"Welcome to SockJS!\n");
        }
        Some(n) => {
            assert_eq!(n, "19");
            assert_eq!(c.exact(19).await, b"Welcome to SockJS!\n");
            let conn = h.get("connection").unwrap_or_default().to_lowercase();
            if conn == "keep-alive" {
                c.send("GET", "/echo", "1.0", &[("Connection", "Keep-Alive")], b"")
                    .await;
                assert_eq!(c.head().await.status, 200);
            } else {
                assert!(c.closed().await);
            }
        }
    }
}

#[tokio::test]
async fn http11_synchronous_greeting_keeps_alive() {
    let a = suite_server().await;
    let mut c = Conn::open(a).await;
    c.send("GET", "/echo", "1.1", &[("Connection", "Keep-Alive")], b"")
        .await;
    let h = c.head().await;
    assert!(
        ["keep-alive", ""].contains(
            &h.get("connection")
                .unwrap_or_default()
                .to_lowercase()
                .as_str()
        )
    );
    assert_eq!(c.body(&h).await, b"Welcome to SockJS!\n");
    c.send("GET", "/echo", "1.1", &[("Connection", "Keep-Alive")], b"")
        .await;
    assert_eq!(c.head().await.status, 200);
}
