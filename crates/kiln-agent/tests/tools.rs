//! HTTP fetch against a local server serving fixture pages (allow-list,
//! redirects, 404, non-HTML, a huge page cut off, a slow page timed out)
//! and the shell tool (no interpreter, allow-list, killed when too slow).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

mod support;

use kiln_agent::tools::{host_of, join_url, split_words};
use kiln_agent::{HttpFetch, Shell, Tool};
use support::Reply;

/// Serves the fixture routes on 127.0.0.1; returns the base URL.
fn serve() -> String {
    support::serve(|path| match path {
        "/page.html" => Reply::ok(
            "text/html; charset=utf-8",
            "<html><head><script>var x=1;</script><style>p{}</style></head><body><nav>menu</nav><h1>Kiln</h1><p>Kilns fire clay at 1200 degrees.</p></body></html>",
        ),
        "/redirect" => Reply::redirect("302 Found", "/page.html"),
        "/offsite" => Reply::redirect("302 Found", "http://evil.example/x"),
        "/image.png" => Reply::ok("image/png", vec![0x89, b'P', b'N', b'G']),
        "/huge" => Reply::ok("text/plain", vec![b'a'; 5 << 20]),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            Reply::ok("text/plain", "late")
        }
        _ => Reply::not_found(),
    })
    .0
}

#[test]
fn fetch_reads_pages_follows_redirects_and_refuses_the_rest() {
    let base = serve();
    let fetch = HttpFetch {
        timeout: Duration::from_secs(1),
        ..HttpFetch::new(vec!["127.0.0.1".into()])
    };
    let text = fetch.call(&format!("{base}/page.html")).unwrap();
    assert!(text.contains("Kilns fire clay at 1200 degrees."), "{text}");
    assert!(!text.contains("var x") && !text.contains("menu"), "{text}");
    let via = fetch.call(&format!("{base}/redirect")).unwrap();
    assert_eq!(via, text);
    let err = fetch
        .call(&format!("{base}/offsite"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evil.example is not on the allow-list"),
        "{err}"
    );
    let err = fetch
        .call(&format!("{base}/missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    let err = fetch
        .call(&format!("{base}/image.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a text page (image/png)"), "{err}");
    let small = HttpFetch {
        max_bytes: 1000,
        ..fetch.clone()
    };
    assert_eq!(small.call(&format!("{base}/huge")).unwrap().len(), 1000);
    let start = Instant::now();
    let err = fetch.call(&format!("{base}/slow")).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(3), "{err}");
    let closed = HttpFetch::new(vec!["example.org".into()]);
    let err = closed
        .call(&format!("{base}/page.html"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1 is not on the allow-list"), "{err}");
    assert!(closed
        .call("file:///etc/passwd")
        .unwrap_err()
        .to_string()
        .contains("not an http(s) URL"));
}

#[test]
fn urls_are_taken_apart_carefully() {
    assert_eq!(
        host_of("https://User@Example.COM:8080/a?b").as_deref(),
        Some("example.com")
    );
    assert_eq!(host_of("ftp://x"), None);
    assert_eq!(join_url("http://h/a/b.html", "/c"), "http://h/c");
    assert_eq!(join_url("http://h/a/b.html", "c.html"), "http://h/a/c.html");
    assert_eq!(join_url("http://h", "c"), "http://h/c");
    assert_eq!(join_url("http://h/a", "https://o/p"), "https://o/p");
}

#[test]
fn the_shell_runs_programs_without_an_interpreter_and_kills_slow_ones() {
    let shell = Shell::new(Duration::from_millis(500));
    assert_eq!(shell.call("echo hello   world").unwrap(), "hello world\n");
    // No interpreter: `;` and `$HOME` are plain arguments.
    assert_eq!(shell.call("echo 'a b' ; $HOME").unwrap(), "a b ; $HOME\n");
    let start = Instant::now();
    let err = shell.call("sleep 5").unwrap_err().to_string();
    assert!(err.contains("was killed"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(shell.call("false").unwrap().starts_with("(exit status 1)"));
    assert!(shell
        .call("no-such-program-xyz")
        .unwrap_err()
        .to_string()
        .contains("cannot run"));
    let limited = Shell {
        allowed_programs: Some(vec!["echo".into()]),
        ..shell.clone()
    };
    assert!(limited
        .call("rm -rf /tmp/nothing")
        .unwrap_err()
        .to_string()
        .contains("not an allowed program"));
    assert_eq!(
        split_words(r#"a "b c" 'd e' f\ g"#).unwrap(),
        ["a", "b c", "d e", "f g"]
    );
    assert!(split_words("'open").is_err());
}
