//! Test harness: the service on a loopback hyper server, and a small raw HTTP/1 client that
//! sees exactly what goes over the wire (chunks, `Connection: close`, HTTP/1.0).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_sockjs::{Config, Connection, SockJs};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Every wait in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f).await.expect("timed out")
}

pub fn echo(conn: Connection) {
    tokio::spawn(async move {
        while let Some(m) = conn.recv().await {
            if conn.send(m).is_err() {
                break;
            }
        }
    });
}

/// The endpoints the protocol suite expects (like the example), plus any extra.
pub fn suite_endpoints() -> Vec<SockJs> {
    let base = Config::default().response_limit(4096);
    vec![
        SockJs::new(base.clone().prefix("/echo"), echo),
        SockJs::new(
            base.clone()
                .prefix("/disabled_websocket_echo")
                .websocket(false),
            echo,
        ),
        SockJs::new(
            base.clone()
                .prefix("/cookie_needed_echo")
                .cookie_needed(true),
            echo,
        ),
        SockJs::new(base.prefix("/close"), |conn| conn.close(3000, "Go away!")),
    ]
}

/// Serves `endpoints` on 127.0.0.1:<free port>.
pub async fn serve(endpoints: Vec<SockJs>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Arc::new(endpoints);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let endpoints = endpoints.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let endpoints = endpoints.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        Ok::<_, Infallible>(match endpoints.iter().find(|e| e.matches(&path)) {
                            Some(e) => e.handle(req, Some(peer)).await,
                            None => {
                                let mut r =
                                    http::Response::new(switchboard_sockjs::Body::default());
                                *r.status_mut() = http::StatusCode::NOT_FOUND;
                                r
                            }
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

pub async fn suite_server() -> SocketAddr {
    serve(suite_endpoints()).await
}

/// A fresh random session path part `/000/<uuid-ish>`.
pub fn session() -> String {
    format!("/000/{:032x}", rand::random::<u128>())
}

#[derive(Debug, Clone)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The header's value (case-insensitive name); several are joined with ", ".
    pub fn get(&self, name: &str) -> Option<String> {
        let v: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    }
}

/// One raw HTTP/1 connection.
pub struct Conn {
    s: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn {
            s: BufReader::new(within(TcpStream::connect(addr)).await.unwrap()),
        }
    }

    /// Writes a request. A body (or POST) gets Content-Length.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        version: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut req = format!("{method} {path} HTTP/{version}\r\nHost: localhost\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        within(self.s.get_mut().write_all(&bytes)).await.unwrap();
    }

    pub async fn line(&mut self) -> String {
        let mut l = String::new();
        within(self.s.read_line(&mut l)).await.unwrap();
        l.trim_end_matches(['\r', '\n']).to_owned()
    }

    pub async fn head(&mut self) -> Head {
        let status_line = self.line().await;
        let mut it = status_line.splitn(3, ' ');
        let version = it
            .next()
            .unwrap_or("")
            .trim_start_matches("HTTP/")
            .to_owned();
        let status = it
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line().await;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Head {
            version,
            status,
            headers,
        }
    }

    /// One chunk of a chunked body; `None` for the last (empty) chunk.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = self.line().await;
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        let mut buf = vec![0; n + 2];
        within(self.s.read_exact(&mut buf)).await.unwrap();
        buf.truncate(n);
        (n > 0).then_some(buf)
    }

    /// Reads exactly `n` bytes.
    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        within(self.s.read_exact(&mut buf)).await.unwrap();
        buf
    }

    /// The whole body as the head describes it.
    pub async fn body(&mut self, head: &Head) -> Vec<u8> {
        if head.status == 204 || head.status == 304 || head.status == 101 {
            return Vec::new();
        }
        if let Some(n) = head.get("content-length") {
            return self.exact(n.parse().unwrap()).await;
        }
        if head
            .get("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            let mut out = Vec::new();
            while let Some(c) = self.chunk().await {
                out.extend(c);
            }
            return out;
        }
        let mut out = Vec::new();
        within(self.s.read_to_end(&mut out)).await.unwrap();
        out
    }

    /// Whether the server closed the connection (EOF with nothing more to read).
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(within(self.s.read(&mut b)).await, Ok(0) | Err(_))
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Resp {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn get(&self, name: &str) -> Option<String> {
        self.head.get(name)
    }
    pub fn status(&self) -> u16 {
        self.head.status
    }
}

/// One request on a fresh connection, read in full.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut c = Conn::open(addr).await;
    c.send(method, path, "1.1", headers, body).await;
    let head = c.head().await;
    let body = c.body(&head).await;
    Resp { head, body }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"").await
}

pub async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "POST", path, &[], body).await
}

/// Starts a streaming request (POST or GET) and returns the connection after the head.
pub async fn stream(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Conn, Head) {
    let mut c = Conn::open(addr).await;
    c.send(method, path, "1.1", headers, b"").await;
    let head = c.head().await;
    (c, head)
}

/// Verifies the suite's `verify_not_cached`.
pub fn assert_not_cached(r: &Head) {
    assert_eq!(
        r.get("cache-control").as_deref(),
        Some("no-store, no-cache, no-transform, must-revalidate, max-age=0")
    );
    assert!(r.get("expires").is_none());
    assert!(r.get("last-modified").is_none());
}

/// The suite's `verify_cors`.
pub fn assert_cors(r: &Head, origin: Option<&str>) {
    match origin {
        Some(o) => {
            assert_eq!(r.get("access-control-allow-origin").as_deref(), Some(o));
            assert_eq!(
                r.get("access-control-allow-credentials").as_deref(),
                Some("true")
            );
        }
        None => {
            assert_eq!(r.get("access-control-allow-origin").as_deref(), Some("*"));
            assert!(r.get("access-control-allow-credentials").is_none());
        }
    }
}

/// The suite's `verify_content_type` (spaces ignored).
pub fn assert_content_type(r: &Head, ct: &str) {
    assert_eq!(
        r.get("content-type").map(|c| c.replace(' ', "")).as_deref(),
        Some(ct)
    );
}

/// The suite's `verify405`.
pub fn assert_405(r: &Resp) {
    assert_eq!(r.status(), 405);
    assert!(r.get("content-type").is_none());
    assert!(r.get("allow").is_some());
    assert!(r.body.is_empty());
}

/// The suite's `verify_options`.
pub async fn assert_options(addr: SocketAddr, path: &str, methods: &str) {
    for origin in ["test", "null"] {
        let r = request(
            addr,
            "OPTIONS",
            path,
            &[
                ("Access-Control-Request-Method", methods),
                ("Origin", origin),
            ],
            b"",
        )
        .await;
        assert!(r.status() == 204 || r.status() == 200, "{}", r.status());
        let cc = r.get("cache-control").unwrap();
        assert!(cc.contains("public"));
        assert!(cc.contains("max-age=31536000"));
        assert!(r.get("expires").is_some());
        assert!(
            r.get("access-control-max-age")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_000_000
        );
        let allowed = r.get("access-control-allow-methods").unwrap();
        for m in methods.split(',') {
            assert!(allowed.contains(m.trim()), "{allowed} lacks {m}");
        }
        assert!(r.body.is_empty());
        assert_cors(&r.head, Some(origin));
    }
}
