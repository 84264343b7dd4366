//! The crawler against a local site: robots.txt honoured, links followed
//! to the depth asked, redirects, 404s and non-HTML reported per page, a
//! huge page cut off, the delay between requests kept.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

mod support;

use kiln_agent::crawl::{crawl, links, CrawlOptions};
use kiln_agent::HttpFetch;
use support::{Log, Reply};

/// The site; returns its base URL and the log of requests.
fn site() -> (String, Log) {
    let html = |body: &str| Reply::ok("text/html", body.to_string());
    support::serve(move |path| {
        match path {
        "/robots.txt" => Reply::ok("text/plain", "User-agent: *\nDisallow: /private\n"),
        "/" => html("<html><body><h1>Home</h1><p>Welcome.</p><a href=\"/a.html\">A</a> <a href='b.html#top'>B</a> <a href=\"/private/secret.html\">S</a> <a href=\"mailto:x@y\">m</a> <a href=\"/missing\">404</a> <a href=\"/old\">old</a> <a href=\"/doc.bin\">bin</a> <a href=\"http://other.example/\">ext</a> <a href=\"/huge.html\">huge</a></body></html>"),
        "/a.html" => html("<p>Page A about kilns.</p><a href=\"/deep.html\">deeper</a>"),
        "/b.html" => html("<p>Page B about glazes.</p><a href=\"/\">home</a>"),
        "/deep.html" => html("<p>Too deep.</p>"),
        "/private/secret.html" => html("<p>secret</p>"),
        "/old" => Reply::redirect("301 Moved Permanently", "/b.html"),
        "/doc.bin" => Reply::ok("application/octet-stream", vec![0, 1, 2]),
        "/huge.html" => Reply::ok("text/html", format!("<p>{}</p>", "x".repeat(3 << 20))),
        _ => Reply::not_found(),
    }
    })
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
