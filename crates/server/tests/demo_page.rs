//! The demo page at `/` and the client libraries under `/lib/`.

mod common;

use std::path::PathBuf;

use common::*;

/// A fresh directory laid out like `node_modules` with the two library files.
fn fake_node_modules(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-client-dir-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sockjs-client/dist")).unwrap();
    std::fs::create_dir_all(dir.join("@stomp/stompjs/bundles")).unwrap();
    std::fs::write(
        dir.join("sockjs-client/dist/sockjs.min.js"),
        "/* fake sockjs */",
    )
    .unwrap();
    std::fs::write(
        dir.join("@stomp/stompjs/bundles/stomp.umd.min.js"),
        "/* fake stompjs */",
    )
    .unwrap();
    // Something a traversal would try to reach.
    std::fs::write(dir.join("secret.txt"), "secret").unwrap();
    dir
}

#[tokio::test]
async fn page_at_root_with_the_contract_ids() {
    let server = start(test_config()).await;
    for path in ["/", "/index.html"] {
        let (status, text) = http_get(server.http(), path, "").await;
        assert_eq!(status, 200, "{path}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: text/html; charset=utf-8"),
            "{text}"
        );
        for id in ["name", "text", "send", "messages", "state", "transport"] {
            assert!(text.contains(&format!("id=\"{id}\"")), "#{id}");
        }
        assert!(text.contains(r#""endpoint":"/chat""#));
        assert!(text.contains(switchboard_server::config::SOCKJS_CDN_URL));
        assert!(text.contains(switchboard_server::config::STOMPJS_CDN_URL));
        assert!(text.contains("window.chatConnected"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn libraries_from_client_dir_without_traversal() {
    let dir = fake_node_modules("serve");
    let mut config = test_config();
    config.sockjs.client_dir = Some(dir.clone());
    let server = start(config).await;
    let (status, text) = http_get(server.http(), "/lib/sockjs.min.js", "").await;
    assert_eq!(status, 200, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/javascript"),
        "{text}"
    );
    assert!(
        lower.contains("cache-control: public, max-age=3600"),
        "{text}"
    );
    assert!(text.ends_with("/* fake sockjs */"), "{text}");
    let (status, text) = http_get(server.http(), "/lib/stomp.umd.min.js", "").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("/* fake stompjs */"));
    // The page and the SockJS iframe page now use the local copies.
    let (_, page) = http_get(server.http(), "/", "").await;
    assert!(page.contains("src=\"/lib/sockjs.min.js\""), "{page}");
    assert!(page.contains("src=\"/lib/stomp.umd.min.js\""));
    let (_, iframe) = http_get(server.http(), "/chat/iframe.html", "").await;
    assert!(iframe.contains("/lib/sockjs.min.js"), "{iframe}");
    // Only the two fixed names: nothing else below client_dir is reachable.
    for path in [
        "/lib/secret.txt",
        "/lib/../secret.txt",
        "/lib/%2e%2e/secret.txt",
        "/lib/sockjs-client/dist/sockjs.min.js",
        "/lib/",
        "/lib/sockjs.min.js/",
    ] {
        let (status, text) = http_get(server.http(), path, "").await;
        assert_eq!(status, 404, "{path}: {text}");
        assert!(
            !text.contains("secret\n") && !text.ends_with("secret"),
            "{path}"
        );
    }
    let r = http_get(server.http(), "/lib/sockjs.min.js", "").await;
    assert_eq!(r.0, 200);
    server.shutdown().await;

    // A missing file is a 404 too.
    std::fs::remove_file(dir.join("@stomp/stompjs/bundles/stomp.umd.min.js")).unwrap();
    let mut config = test_config();
    config.sockjs.client_dir = Some(dir.clone());
    let server = start(config).await;
    let (status, _) = http_get(server.http(), "/lib/stomp.umd.min.js", "").await;
    assert_eq!(status, 404);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn libraries_are_404_without_client_dir() {
    let server = start(test_config()).await;
    for path in ["/lib/sockjs.min.js", "/lib/stomp.umd.min.js"] {
        let (status, _) = http_get(server.http(), path, "").await;
        assert_eq!(status, 404, "{path}");
    }
    server.shutdown().await;
}
