//! A tiny HTTP/1.1 server on loopback for the fetch and crawl tests: each
//! request is answered by a routing function and logged with its time.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One response.
pub struct Reply {
    /// Status line after `HTTP/1.1 `, e.g. `200 OK`.
    pub status: &'static str,
    /// `Content-Type`.
    pub kind: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Extra header lines, each ending in `\r\n`.
    pub extra: String,
}

impl Reply {
    /// A 200 response.
    pub fn ok(kind: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: "200 OK",
            kind,
            body: body.into(),
            extra: String::new(),
        }
    }

    /// A redirect to `to`.
    pub fn redirect(status: &'static str, to: &str) -> Self {
        Self {
            status,
            kind: "text/plain",
            body: Vec::new(),
            extra: format!("Location: {to}\r\n"),
        }
    }

    /// A 404.
    pub fn not_found() -> Self {
        Self {
            status: "404 Not Found",
            kind: "text/plain",
            body: b"no".to_vec(),
            extra: String::new(),
        }
    }
}

/// Requests seen: (path, when).
pub type Log = Arc<Mutex<Vec<(String, Instant)>>>;

/// Serves `route` on 127.0.0.1 (a thread per connection); returns the base
/// URL and the request log.
pub fn serve(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let log: Log = Arc::default();
    let seen = log.clone();
    let route = Arc::new(route);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (route, seen) = (route.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                while reader.read_line(&mut String::new()).unwrap_or(0) > 2 {}
                seen.lock().unwrap().push((path.clone(), Instant::now()));
                let r = route(&path);
                let head = format!(
                    "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                    r.status,
                    r.kind,
                    r.body.len(),
                    r.extra
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&r.body);
            });
        }
    });
    (base, log)
}
