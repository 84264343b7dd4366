//! The crawler against a local site: robots.txt honoured, links followed
//! to the depth asked, redirects, 404s and non-HTML reported per page, a
//! huge page cut off, the delay between requests kept.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_agent::crawl::{crawl, links, CrawlOptions};
use kiln_agent::HttpFetch;

/// The site; returns its base URL and the log of (path, time) requests.
/// Requests seen: (path, when).
type Log = Arc<Mutex<Vec<(String, Instant)>>>;

fn site() -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() <= 2 {
                    break;
                }
            }
            seen.lock().unwrap().push((path.clone(), Instant::now()));
            let html = |body: &str| {
                (
                    "200 OK",
                    "text/html",
                    body.as_bytes().to_vec(),
                    String::new(),
                )
            };
            let (status, kind, body, extra) = match path.as_str() {
                "/robots.txt" => ("200 OK", "text/plain", b"User-agent: *\nDisallow: /private\n".to_vec(), String::new()),
                "/" => html("<html><body><h1>Home</h1><p>Welcome.</p><a href=\"/a.html\">A</a> <a href='b.html#top'>B</a> <a href=\"/private/secret.html\">S</a> <a href=\"mailto:x@y\">m</a> <a href=\"/missing\">404</a> <a href=\"/old\">old</a> <a href=\"/doc.bin\">bin</a> <a href=\"http://other.example/\">ext</a> <a href=\"/huge.html\">huge</a></body></html>"),
                "/a.html" => html("<p>Page A about kilns.</p><a href=\"/deep.html\">deeper</a>"),
                "/b.html" => html("<p>Page B about glazes.</p><a href=\"/\">home</a>"),
                "/deep.html" => html("<p>Too deep.</p>"),
                "/private/secret.html" => html("<p>secret</p>"),
                "/old" => ("301 Moved Permanently", "text/plain", Vec::new(), "Location: /b.html\r\n".into()),
                "/doc.bin" => ("200 OK", "application/octet-stream", vec![0, 1, 2], String::new()),
                "/huge.html" => ("200 OK", "text/html", format!("<p>{}</p>", "x".repeat(3 << 20)).into_bytes(), String::new()),
                _ => ("404 Not Found", "text/plain", b"no".to_vec(), String::new()),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (base, log)
}

#[test]
fn a_polite_crawl_of_a_local_site() {
    let (base, log) = site();
    let fetch = HttpFetch {
        max_bytes: 100_000,
        ..HttpFetch::new(vec!["127.0.0.1".into()])
    };
    let options = CrawlOptions {
        max_pages: 50,
        max_depth: 1,
        delay: Duration::from_millis(30),
    };
    let mut pages = HashMap::new();
    let fetched = crawl(&fetch, &[format!("{base}/")], &options, |p| {
        pages.insert(p.url.trim_start_matches(&base).to_string(), p.text.clone());
    })
    .unwrap();
    let text = |k: &str| pages[k].as_ref().unwrap().clone();
    assert!(text("/").contains("Welcome."));
    assert!(text("/a.html").contains("Page A about kilns."));
    assert!(text("/b.html").contains("Page B"));
    // The redirect lands on b.html's text.
    assert!(text("/old").contains("Page B"));
    assert_eq!(
        pages["/private/secret.html"],
        Err("disallowed by robots.txt".into())
    );
    assert!(pages["/missing"].as_ref().unwrap_err().contains("HTTP 404"));
    assert!(pages["/doc.bin"]
        .as_ref()
        .unwrap_err()
        .contains("not a text page"));
    assert!(text("/huge.html").len() <= 100_000);
    // Depth 1: deep.html is two links away; other hosts are never visited.
    assert!(!pages.contains_key("/deep.html"));
    assert!(pages.keys().all(|k| !k.contains("other.example")));
    let log = log.lock().unwrap();
    assert_eq!(log.iter().filter(|(p, _)| p == "/robots.txt").count(), 1);
    assert!(
        !log.iter().any(|(p, _)| p.starts_with("/private")),
        "never requested"
    );
    assert_eq!(
        fetched,
        log.len() - 1 - 1,
        "pages = requests - robots.txt - the redirect hop"
    );
    // Requests keep the delay (the redirect's second hop is inside one fetch).
    let starts: Vec<Instant> = log.iter().map(|(_, t)| *t).collect();
    let close = starts
        .windows(2)
        .filter(|w| w[1] - w[0] < Duration::from_millis(25))
        .count();
    assert!(close <= 1, "{close} requests closer than the delay");
}

#[test]
fn max_pages_and_links() {
    let (base, _) = site();
    let fetch = HttpFetch::new(vec!["127.0.0.1".into()]);
    let options = CrawlOptions {
        max_pages: 2,
        max_depth: 5,
        delay: Duration::ZERO,
    };
    let mut n = 0;
    assert_eq!(
        crawl(&fetch, &[format!("{base}/")], &options, |_| n += 1).unwrap(),
        2
    );
    assert_eq!(n, 2);
    assert_eq!(
        links("<A HREF=\"/x\">x</A><a class=c href='y.html'>y</a><a href=#top>t</a><a href=\"javascript:void(0)\">j</a><a href=\"https://e/z?a=1&amp;b=2\">z</a>"),
        ["/x", "y.html", "https://e/z?a=1&b=2"]
    );
}
