//! sockjs-protocol: SessionURLs, Protocol, XhrPolling, XhrStreaming, JSONEncoding,
//! HandlingClose, Http10/Http11 `test_streaming`.

mod common;
use common::*;

async fn open_xhr(a: std::net::SocketAddr, url: &str) {
    let r = post(a, &format!("{url}/xhr"), b"").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "o\n");
}

#[tokio::test]
async fn session_urls_any_value() {
    let a = suite_server().await;
    let r = rand::random::<u16>();
    for part in [
        format!("/a/a{r}"),
        format!("/_/_{r}"),
        format!("/1/{r}"),
        format!("/abcdefgh_i-j%20/abcdefg_i-j%20{r}"),
    ] {
        open_xhr(a, &format!("/echo{part}")).await;
    }
}

#[tokio::test]
async fn session_urls_invalid_paths() {
    let a = suite_server().await;
    for suffix in ["//", "/a./a", "/a/a.", "/./.", "/", "///"] {
        let url = format!("/echo{suffix}/xhr");
        assert_eq!(get(a, &url).await.status(), 404, "GET {url}");
        assert_eq!(post(a, &url, b"").await.status(), 404, "POST {url}");
    }
}

#[tokio::test]
async fn session_urls_ignore_server_id() {
    let a = suite_server().await;
    let id = format!("{:x}", rand::random::<u64>());
    open_xhr(a, &format!("/echo/000/{id}")).await;
    let r = post(a, &format!("/echo/000/{id}/xhr_send"), br#"["a"]"#).await;
    assert_eq!(r.status(), 204);
    assert!(r.body.is_empty());
    let r = post(a, &format!("/echo/999/{id}/xhr"), b"").await;
    assert_eq!(r.text(), "a[\"a\"]\n");
}

#[tokio::test]
async fn protocol_simple_session_and_second_receiver() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["a"]"#)
            .await
            .status(),
        204
    );
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"a\"]\n"
    );
    assert_eq!(
        post(a, "/echo/000/bad_session/xhr_send", br#"["a"]"#)
            .await
            .status(),
        404
    );
    // A waiting poll, then a second one: 2010 to the second.
    let (mut r1, h1) = stream(a, "POST", &format!("{url}/xhr"), &[]).await;
    assert_eq!(h1.status, 200);
    let r2 = post(a, &format!("{url}/xhr"), b"").await;
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.text(), "c[2010,\"Another connection still open\"]\n");
    // The first poll still works.
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["b"]"#)
            .await
            .status(),
        204
    );
    assert_eq!(r1.chunk().await.unwrap(), b"a[\"b\"]\n");
}

#[tokio::test]
async fn protocol_close_session() {
    let a = suite_server().await;
    let url = format!("/close{}", session());
    open_xhr(a, &url).await;
    for _ in 0..2 {
        let r = post(a, &format!("{url}/xhr"), b"").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "c[3000,\"Go away!\"]\n");
    }
}

#[tokio::test]
async fn xhr_options() {
    let a = suite_server().await;
    for suffix in ["/xhr", "/xhr_send"] {
        assert_options(a, &format!("/echo/abc/abc{suffix}"), "OPTIONS, POST").await;
    }
    assert_options(a, "/echo/abc/abc/xhr_streaming", "OPTIONS, POST").await;
}

#[tokio::test]
async fn xhr_transport() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let r = request(a, "POST", &format!("{url}/xhr"), &[("Origin", "test")], b"").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "o\n");
    assert_content_type(&r.head, "application/javascript;charset=UTF-8");
    assert_cors(&r.head, Some("test"));
    assert_not_cached(&r.head);
    let r = request(
        a,
        "POST",
        &format!("{url}/xhr_send"),
        &[("Origin", "test")],
        br#"["x"]"#,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(r.body.is_empty());
    assert_content_type(&r.head, "text/plain;charset=UTF-8");
    assert_cors(&r.head, Some("test"));
    assert_not_cached(&r.head);
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"x\"]\n"
    );
}

#[tokio::test]
async fn xhr_invalid_session() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["x"]"#)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn xhr_invalid_json() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    let r = post(a, &format!("{url}/xhr_send"), br#"["x"#).await;
    assert_eq!(r.status(), 500);
    assert!(r.text().contains("Broken JSON encoding."));
    let r = post(a, &format!("{url}/xhr_send"), b"").await;
    assert_eq!(r.status(), 500);
    assert!(r.text().contains("Payload expected."));
    let r = post(a, &format!("{url}/xhr_send"), br#"["a"]"#).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"a\"]\n"
    );
}

#[tokio::test]
async fn xhr_send_validates_payload_before_session_lookup() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["x"#)
            .await
            .status(),
        500
    );
    assert_eq!(post(a, &format!("{url}/xhr_send"), b"").await.status(), 500);
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"{"a":1}"#)
            .await
            .status(),
        500
    );
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["x"]"#)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn xhr_content_types() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    let cts = [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "",
        "application/json; charset=utf-8",
        "text/xml; charset=utf-8",
        "text/xml",
    ];
    for ct in cts {
        let r = request(
            a,
            "POST",
            &format!("{url}/xhr_send"),
            &[("Content-Type", ct)],
            br#"["a"]"#,
        )
        .await;
        assert_eq!(r.status(), 204, "{ct}");
        assert!(r.body.is_empty());
    }
    let want = format!("a[{}]\n", vec!["\"a\""; cts.len()].join(","));
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), want);
}

#[tokio::test]
async fn xhr_request_headers_cors() {
    let a = suite_server().await;
    let url = format!("/echo{}/xhr", session());
    let r = request(
        a,
        "OPTIONS",
        &url,
        &[
            ("Origin", "test"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "a, b, c"),
        ],
        b"",
    )
    .await;
    assert!(r.status() == 204 || r.status() == 200);
    assert_cors(&r.head, Some("test"));
    assert_eq!(
        r.get("access-control-allow-headers").as_deref(),
        Some("a, b, c")
    );
    let r = request(
        a,
        "OPTIONS",
        &url,
        &[
            ("Origin", "test"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", ""),
        ],
        b"",
    )
    .await;
    assert!(r.get("access-control-allow-headers").is_none());
    let r = request(
        a,
        "OPTIONS",
        &url,
        &[
            ("Origin", "test"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_cors(&r.head, Some("test"));
    assert!(r.get("access-control-allow-headers").is_none());
}

#[tokio::test]
async fn xhr_sending_empty_frame() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), b"[]").await.status(),
        204
    );
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["a"]"#)
            .await
            .status(),
        204
    );
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"a\"]\n"
    );
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    for (m, t, allow) in [
        ("GET", "xhr", "OPTIONS, POST"),
        ("GET", "xhr_send", "OPTIONS, POST"),
        ("GET", "xhr_streaming", "OPTIONS, POST"),
        ("POST", "eventsource", "GET"),
        ("POST", "htmlfile", "GET"),
        ("POST", "jsonp", "GET"),
        ("GET", "jsonp_send", "POST"),
        ("POST", "websocket", "GET"),
    ] {
        let r = request(a, m, &format!("{url}/{t}"), &[], b"").await;
        assert_405(&r);
        assert_eq!(r.get("allow").as_deref(), Some(allow), "{m} {t}");
    }
    assert_eq!(post(a, &format!("{url}/nope"), b"").await.status(), 404);
}

#[tokio::test]
async fn xhr_streaming_transport() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(
        a,
        "POST",
        &format!("{url}/xhr_streaming"),
        &[("Origin", "test")],
    )
    .await;
    assert_eq!(h.status, 200);
    assert_content_type(&h, "application/javascript;charset=UTF-8");
    assert_cors(&h, Some("test"));
    assert_not_cached(&h);
    assert_eq!(h.get("x-accel-buffering").as_deref(), Some("no"));
    let mut prelude = vec![b'h'; 2048];
    prelude.push(b'\n');
    assert_eq!(c.chunk().await.unwrap(), prelude);
    assert_eq!(c.chunk().await.unwrap(), b"o\n");
    let r = post(a, &format!("{url}/xhr_send"), br#"["x"]"#).await;
    assert_eq!(r.status(), 204);
    assert_eq!(c.chunk().await.unwrap(), b"a[\"x\"]\n");
}

#[tokio::test]
async fn xhr_streaming_response_limit() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    assert_eq!(h.status, 200);
    assert!(c.chunk().await.is_some());
    assert_eq!(c.chunk().await.unwrap(), b"o\n");
    let msg = format!("\"{}\"", "x".repeat(128));
    for _ in 0..31 {
        let r = post(a, &format!("{url}/xhr_send"), format!("[{msg}]").as_bytes()).await;
        assert_eq!(r.status(), 204);
        assert_eq!(c.chunk().await.unwrap(), format!("a[{msg}]\n").as_bytes());
    }
    assert_eq!(c.chunk().await, None, "the response ends past 4096 bytes");
    // The session lives on: the next receiver gets what is sent next.
    let (mut c, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    assert!(c.chunk().await.is_some());
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), br#"["y"]"#)
            .await
            .status(),
        204
    );
    assert_eq!(c.chunk().await.unwrap(), b"a[\"y\"]\n");
}

#[tokio::test]
async fn messages_queued_between_polls_go_out_in_one_frame() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    for m in ["1", "2", "3"] {
        assert_eq!(
            post(
                a,
                &format!("{url}/xhr_send"),
                format!("[\"{m}\"]").as_bytes()
            )
            .await
            .status(),
            204
        );
    }
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"1\",\"2\",\"3\"]\n"
    );
}

/// The suite's `escapable_by_server` ranges, from 255 up.
fn server_killer() -> (String, String) {
    let mut raw = String::new();
    let mut esc = String::from("\"");
    for c in 255u32..65536 {
        let Some(ch) = char::from_u32(c) else {
            continue;
        };
        if matches!(c, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff) {
            raw.push(ch);
            esc.push_str(&format!("\\u{c:04x}"));
        }
    }
    esc.push('"');
    (raw, esc)
}

#[tokio::test]
async fn json_xhr_server_encodes() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    let (raw, esc) = server_killer();
    let payload = format!("[\"{raw}\"]");
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), payload.as_bytes())
            .await
            .status(),
        204
    );
    let r = post(a, &format!("{url}/xhr"), b"").await;
    let body = r.text();
    let inner = &body.trim()[2..body.trim().len() - 1];
    assert_eq!(inner, esc);
}

#[tokio::test]
async fn json_xhr_server_decodes() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    // What sockjs-client escapes: controls, C1, soft hyphen, U+2000-20FF, BOM, specials, CJK
    // compatibility characters (a representative subset of its list, every range end).
    let mut s = String::new();
    let mut esc = String::new();
    for c in (0u32..0x20)
        .chain(0x7f..0xa0)
        .chain([0xad, 0x600, 0x604, 0x70f, 0x17b4, 0x17b5])
        .chain(0x2000..0x2100)
        .chain([0xfeff, 0xf900, 0xfa0d, 0xfb4e])
        .chain(0xfff0..0x10000)
    {
        let ch = char::from_u32(c).unwrap();
        s.push(ch);
        esc.push_str(&format!("\\u{c:04x}"));
    }
    let payload = format!("[\"{esc}\"]");
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), payload.as_bytes())
            .await
            .status(),
        204
    );
    let r = post(a, &format!("{url}/xhr"), b"").await;
    let body = r.text();
    let frame = body.trim().strip_prefix('a').unwrap();
    let got = switchboard_sockjs::json::decode_array(frame.as_bytes()).unwrap();
    assert_eq!(got, vec![s]);
}

#[tokio::test]
async fn handling_close_frame_repeated_and_streams_end() {
    let a = suite_server().await;
    let url = format!("/close{}", session());
    let (mut r1, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r1.chunk().await.unwrap();
    assert_eq!(r1.chunk().await.unwrap(), b"o\n");
    assert_eq!(r1.chunk().await.unwrap(), b"c[3000,\"Go away!\"]\n");
    let (mut r2, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r2.chunk().await.unwrap();
    assert_eq!(r2.chunk().await.unwrap(), b"c[3000,\"Go away!\"]\n");
    assert_eq!(r1.chunk().await, None);
    assert_eq!(r2.chunk().await, None);
}

#[tokio::test]
async fn handling_close_request() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut r1, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r1.chunk().await.unwrap();
    assert_eq!(r1.chunk().await.unwrap(), b"o\n");
    let (mut r2, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r2.chunk().await.unwrap();
    assert_eq!(
        r2.chunk().await.unwrap(),
        b"c[2010,\"Another connection still open\"]\n"
    );
    assert_eq!(r2.chunk().await, None);
}

#[tokio::test]
async fn handling_close_abort_xhr_streaming() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut r1, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r1.chunk().await.unwrap();
    assert_eq!(r1.chunk().await.unwrap(), b"o\n");
    let (mut r2, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    r2.chunk().await.unwrap();
    assert_eq!(
        r2.chunk().await.unwrap(),
        b"c[2010,\"Another connection still open\"]\n"
    );
    assert_eq!(r2.chunk().await, None);
    drop(r1);
    // The server notices the abort asynchronously: poll until it does (bounded).
    let mut last = Vec::new();
    for _ in 0..100 {
        let (mut r3, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
        r3.chunk().await.unwrap();
        last = r3.chunk().await.unwrap();
        if last != b"c[2010,\"Another connection still open\"]\n" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        last == b"o\n" || last == b"c[1002,\"Connection interrupted\"]\n",
        "{:?}",
        String::from_utf8_lossy(&last)
    );
}

#[tokio::test]
async fn handling_close_abort_xhr_polling() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    open_xhr(a, &url).await;
    let (r1, _) = stream(a, "POST", &format!("{url}/xhr"), &[]).await;
    let r2 = post(a, &format!("{url}/xhr"), b"").await;
    assert_eq!(r2.text(), "c[2010,\"Another connection still open\"]\n");
    drop(r1);
    let mut last = String::new();
    for _ in 0..100 {
        last = post(a, &format!("{url}/xhr"), b"").await.text();
        if !last.starts_with("c[2010") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        last == "o\n" || last == "c[1002,\"Connection interrupted\"]\n",
        "{last}"
    );
}

#[tokio::test]
async fn http10_streaming_is_close_delimited() {
    let a = suite_server().await;
    let url = format!("/close{}", session());
    let mut c = Conn::open(a).await;
    c.send(
        "POST",
        &format!("{url}/xhr_streaming"),
        "1.0",
        &[("Connection", "Keep-Alive")],
        b"",
    )
    .await;
    let h = c.head().await;
    assert_eq!(h.status, 200);
    assert!(h.get("transfer-encoding").is_none());
    assert!(h.get("content-length").is_none());
    assert_eq!(c.exact(2049).await[0], b'h');
    assert_eq!(c.exact(2).await, b"o\n");
    assert_eq!(c.exact(19).await, b"c[3000,\"Go away!\"]\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn http11_streaming_is_chunked() {
    let a = suite_server().await;
    let url = format!("/close{}", session());
    let mut c = Conn::open(a).await;
    c.send(
        "POST",
        &format!("{url}/xhr_streaming"),
        "1.1",
        &[("Connection", "Keep-Alive")],
        b"",
    )
    .await;
    let h = c.head().await;
    assert_eq!(h.status, 200);
    assert_eq!(
        h.get("transfer-encoding").unwrap().to_lowercase(),
        "chunked"
    );
    assert!(h.get("content-length").is_none());
    assert_eq!(c.chunk().await.unwrap()[0], b'h');
    assert_eq!(c.chunk().await.unwrap(), b"o\n");
    assert_eq!(c.chunk().await.unwrap(), b"c[3000,\"Go away!\"]\n");
    assert_eq!(c.chunk().await, None);
}
