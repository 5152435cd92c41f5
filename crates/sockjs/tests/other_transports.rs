//! sockjs-protocol: EventSource, HtmlFile, JsonPolling, JsessionidCookie.

mod common;
use common::*;

#[tokio::test]
async fn eventsource_transport() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(a, "GET", &format!("{url}/eventsource"), &[]).await;
    assert_eq!(h.status, 200);
    assert_content_type(&h, "text/event-stream");
    assert_not_cached(&h);
    assert_eq!(h.get("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(c.chunk().await.unwrap(), b"\r\n");
    assert_eq!(c.chunk().await.unwrap(), b"data: o\r\n\r\n");
    let r = post(a, &format!("{url}/xhr_send"), br#"["x"]"#).await;
    assert!(r.body.is_empty());
    assert_eq!(r.status(), 204);
    assert_eq!(c.chunk().await.unwrap(), b"data: a[\"x\"]\r\n\r\n");
    let r = post(a, &format!("{url}/xhr_send"), br#"["  \u0000\n\r "]"#).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        c.chunk().await.unwrap(),
        b"data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
    );
}

#[tokio::test]
async fn eventsource_response_limit() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(a, "GET", &format!("{url}/eventsource"), &[]).await;
    assert_eq!(h.status, 200);
    assert!(c.chunk().await.is_some());
    assert_eq!(c.chunk().await.unwrap(), b"data: o\r\n\r\n");
    let msg = format!("\"{}\"", "x".repeat(4096));
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), format!("[{msg}]").as_bytes())
            .await
            .status(),
        204
    );
    assert_eq!(
        c.chunk().await.unwrap(),
        format!("data: a[{msg}]\r\n\r\n").as_bytes()
    );
    assert_eq!(c.chunk().await, None);
}

const HTMLFILE_HEAD: &str = r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.callback;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"#;

#[tokio::test]
async fn htmlfile_transport() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(a, "GET", &format!("{url}/htmlfile?c=%63allback"), &[]).await;
    assert_eq!(h.status, 200);
    assert_content_type(&h, "text/html;charset=UTF-8");
    assert_not_cached(&h);
    let d = c.chunk().await.unwrap();
    assert!(d.len() > 1024);
    assert_eq!(String::from_utf8(d).unwrap().trim(), HTMLFILE_HEAD);
    assert_eq!(
        c.chunk().await.unwrap(),
        b"<script>\np(\"o\");\n</script>\r\n"
    );
    let r = post(a, &format!("{url}/xhr_send"), br#"["x"]"#).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        c.chunk().await.unwrap(),
        b"<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
    );
}

#[tokio::test]
async fn htmlfile_and_jsonp_callback_errors() {
    let a = suite_server().await;
    for t in ["htmlfile", "jsonp"] {
        let r = get(a, &format!("/echo/a/a/{t}")).await;
        assert_eq!(r.status(), 500);
        assert!(r.text().contains("\"callback\" parameter required"));
        for cb in ["%20", "*", "abc(", "abc%28"] {
            let r = get(a, &format!("/echo/a/a/{t}?c={cb}")).await;
            assert_eq!(r.status(), 500, "{t} {cb}");
            assert!(r.text().contains("invalid \"callback\" parameter"));
        }
    }
}

#[tokio::test]
async fn htmlfile_response_limit() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let (mut c, h) = stream(a, "GET", &format!("{url}/htmlfile?c=callback"), &[]).await;
    assert_eq!(h.status, 200);
    assert!(c.chunk().await.is_some());
    assert_eq!(
        c.chunk().await.unwrap(),
        b"<script>\np(\"o\");\n</script>\r\n"
    );
    let msg = "x".repeat(4096);
    assert_eq!(
        post(
            a,
            &format!("{url}/xhr_send"),
            format!("[\"{msg}\"]").as_bytes()
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        c.chunk().await.unwrap(),
        format!("<script>\np(\"a[\\\"{msg}\\\"]\");\n</script>\r\n").as_bytes()
    );
    assert_eq!(c.chunk().await, None);
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn jsonp_transport() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let r = get(a, &format!("{url}/jsonp?c=%63allback")).await;
    assert_eq!(r.status(), 200);
    assert_content_type(&r.head, "application/javascript;charset=UTF-8");
    assert_not_cached(&r.head);
    assert_eq!(r.text(), "/**/callback(\"o\");\r\n");
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.text(), "ok");
    assert_eq!(r.status(), 200);
    assert_content_type(&r.head, "text/plain;charset=UTF-8");
    assert_not_cached(&r.head);
    let r = get(a, &format!("{url}/jsonp?c=%63allback")).await;
    assert_eq!(r.text(), "/**/callback(\"a[\\\"x\\\"]\");\r\n");
}

#[tokio::test]
async fn jsonp_invalid_json() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"o\");\r\n"
    );
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22x",
    )
    .await;
    assert_eq!(r.status(), 500);
    assert!(r.text().contains("Broken JSON encoding."));
    for data in ["", "d=", "p=p"] {
        let r = request(
            a,
            "POST",
            &format!("{url}/jsonp_send"),
            &[FORM],
            data.as_bytes(),
        )
        .await;
        assert_eq!(r.status(), 500, "{data}");
        assert!(r.text().contains("Payload expected."));
    }
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22b%22%5D",
    )
    .await;
    assert_eq!(r.text(), "ok");
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"a[\\\"b\\\"]\");\r\n"
    );
}

#[tokio::test]
async fn jsonp_content_types() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"o\");\r\n"
    );
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22abc%22%5D",
    )
    .await;
    assert_eq!(r.text(), "ok");
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[("Content-Type", "text/plain")],
        br#"["%61bc"]"#,
    )
    .await;
    assert_eq!(r.text(), "ok");
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n"
    );
}

#[tokio::test]
async fn jsonp_close() {
    let a = suite_server().await;
    let url = format!("/close{}", session());
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"o\");\r\n"
    );
    for _ in 0..2 {
        assert_eq!(
            get(a, &format!("{url}/jsonp?c=x")).await.text(),
            "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        );
    }
}

#[tokio::test]
async fn jsonp_sending_empty_frame() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"o\");\r\n"
    );
    assert_eq!(
        request(
            a,
            "POST",
            &format!("{url}/jsonp_send"),
            &[FORM],
            b"d=%5B%5D"
        )
        .await
        .text(),
        "ok"
    );
    assert_eq!(
        request(
            a,
            "POST",
            &format!("{url}/jsonp_send"),
            &[FORM],
            b"d=%5B%22x%22%5D"
        )
        .await
        .text(),
        "ok"
    );
    assert_eq!(
        get(a, &format!("{url}/jsonp?c=x")).await.text(),
        "/**/x(\"a[\\\"x\\\"]\");\r\n"
    );
}

#[tokio::test]
async fn jsonp_send_to_unknown_session_is_404() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.status(), 404);
}

fn assert_cookie(r: &Head, value: &str) {
    let c = r.get("set-cookie").expect("Set-Cookie");
    let mut parts = c.split(';');
    assert_eq!(parts.next().unwrap().trim(), format!("JSESSIONID={value}"));
    assert_eq!(parts.next().unwrap().trim().to_lowercase(), "path=/");
}

#[tokio::test]
async fn jsessionid_info_and_xhr() {
    let a = suite_server().await;
    let r = get(a, "/cookie_needed_echo/info").await;
    assert_eq!(r.status(), 200);
    assert!(r.get("set-cookie").is_none());
    assert!(r.text().contains("\"cookie_needed\":true"));
    let url = format!("/cookie_needed_echo{}", session());
    let r = post(a, &format!("{url}/xhr"), b"").await;
    assert_eq!(r.text(), "o\n");
    assert_cookie(&r.head, "dummy");
    let url = format!("/cookie_needed_echo{}", session());
    let r = request(
        a,
        "POST",
        &format!("{url}/xhr"),
        &[("Cookie", "JSESSIONID=abcdef")],
        b"",
    )
    .await;
    assert_eq!(r.text(), "o\n");
    assert_cookie(&r.head, "abcdef");
}

#[tokio::test]
async fn jsessionid_streaming_transports() {
    let a = suite_server().await;
    for (m, t) in [
        ("POST", "xhr_streaming"),
        ("GET", "eventsource"),
        ("GET", "htmlfile?c=%63allback"),
    ] {
        let url = format!("/cookie_needed_echo{}/{t}", session());
        let (_c, h) = stream(a, m, &url, &[]).await;
        assert_eq!(h.status, 200);
        assert_cookie(&h, "dummy");
    }
}

#[tokio::test]
async fn jsessionid_jsonp() {
    let a = suite_server().await;
    let url = format!("/cookie_needed_echo{}", session());
    let r = get(a, &format!("{url}/jsonp?c=%63allback")).await;
    assert_eq!(r.status(), 200);
    assert_cookie(&r.head, "dummy");
    assert_eq!(r.text(), "/**/callback(\"o\");\r\n");
    let r = request(
        a,
        "POST",
        &format!("{url}/jsonp_send"),
        &[FORM],
        b"d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.text(), "ok");
    assert_cookie(&r.head, "dummy");
}

#[tokio::test]
async fn no_cookie_without_cookie_needed() {
    let a = suite_server().await;
    let url = format!("/echo{}", session());
    let r = post(a, &format!("{url}/xhr"), b"").await;
    assert!(r.get("set-cookie").is_none());
}
