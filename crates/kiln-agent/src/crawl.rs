//! A polite crawler: robots.txt honoured (per host, fetched once), a delay
//! between requests to the same host (the larger of ours and the site's
//! `Crawl-delay`), same-host links followed breadth-first to a depth,
//! readable text per page. Built on [`HttpFetch`] (allow-list, body limit,
//! redirects checked).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::robots::Robots;
use crate::tools::{host_of, join_url, readable_text, HttpFetch};
use crate::AgentError;

/// The user agent robots.txt rules are matched against.
pub const USER_AGENT: &str = "kiln-agent";

/// Crawl settings.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Most pages fetched in all.
    pub max_pages: usize,
    /// Link depth from the start URLs (0: only the start URLs).
    pub max_depth: usize,
    /// Least time between two requests to one host.
    pub delay: Duration,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        Self {
            max_pages: 20,
            max_depth: 1,
            delay: Duration::from_secs(1),
        }
    }
}

/// One crawled page (or why it could not be read).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The URL asked for.
    pub url: String,
    /// The page's readable text, or the error.
    pub text: Result<String, String>,
}

/// Crawls from `start`, calling `on_page` for every page visited.
pub fn crawl(
    fetch: &HttpFetch,
    start: &[String],
    options: &CrawlOptions,
    mut on_page: impl FnMut(&Page),
) -> Result<usize, AgentError> {
    let mut queue: VecDeque<(String, usize)> =
        start.iter().map(|u| (strip_fragment(u), 0)).collect();
    let mut seen: HashSet<String> = queue.iter().map(|(u, _)| u.clone()).collect();
    let mut robots: HashMap<String, Robots> = HashMap::new();
    let mut last_request: HashMap<String, Instant> = HashMap::new();
    let mut pages = 0;
    while let Some((url, depth)) = queue.pop_front() {
        if pages >= options.max_pages {
            break;
        }
        let host =
            host_of(&url).ok_or_else(|| AgentError::Tool(format!("not an http(s) URL: {url}")))?;
        let origin = origin_of(&url);
        if !robots.contains_key(&host) {
            wait_turn(&mut last_request, &host, options.delay);
            let rules = match fetch.get(&format!("{origin}/robots.txt")) {
                Ok((_, _, body)) => Robots::parse(&String::from_utf8_lossy(&body), USER_AGENT),
                // No robots.txt (404) or unreadable: no rules.
                Err(_) => Robots::default(),
            };
            robots.insert(host.clone(), rules);
        }
        let rules = &robots[&host];
        let path = &url[origin.len()..];
        if !rules.allows(if path.is_empty() { "/" } else { path }) {
            on_page(&Page {
                url: url.clone(),
                text: Err("disallowed by robots.txt".into()),
            });
            continue;
        }
        let delay = options.delay.max(Duration::from_secs_f64(
            rules.crawl_delay.unwrap_or(0.0).min(60.0),
        ));
        wait_turn(&mut last_request, &host, delay);
        pages += 1;
        let page = match fetch.get(&url) {
            Ok((final_url, kind, body)) => {
                if kind.contains("html") && depth < options.max_depth {
                    for link in links(&String::from_utf8_lossy(&body)) {
                        let next = strip_fragment(&join_url(&final_url, &link));
                        if host_of(&next).as_deref() == Some(host.as_str())
                            && seen.insert(next.clone())
                        {
                            queue.push_back((next, depth + 1));
                        }
                    }
                }
                Page {
                    url,
                    text: readable_text(&kind, &body).map_err(|e| e.to_string()),
                }
            }
            Err(e) => Page {
                url,
                text: Err(e.to_string()),
            },
        };
        on_page(&page);
    }
    Ok(pages)
}

/// Sleeps until `delay` has passed since the last request to `host`.
fn wait_turn(last: &mut HashMap<String, Instant>, host: &str, delay: Duration) {
    if let Some(t) = last.get(host) {
        let since = t.elapsed();
        if since < delay {
            std::thread::sleep(delay - since);
        }
    }
    last.insert(host.to_string(), Instant::now());
}

/// `scheme://authority` of a URL.
fn origin_of(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    url[..end].to_string()
}

fn strip_fragment(url: &str) -> String {
    url.split('#').next().unwrap_or(url).to_string()
}

/// The `href` targets of `<a>` tags (http(s) and relative; not
/// `mailto:`, `javascript:` and the like).
pub fn links(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<a") {
        let tag_start = at + i;
        let Some(tag_len) = lower[tag_start..].find('>') else {
            break;
        };
        let tag = &html[tag_start..tag_start + tag_len];
        let tag_lower = &lower[tag_start..tag_start + tag_len];
        at = tag_start + tag_len;
        let Some(h) = tag_lower.find("href=") else {
            continue;
        };
        let rest = &tag[h + 5..];
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
            _ => rest.split(|c: char| c.is_whitespace()).next().unwrap_or(""),
        };
        let value = value.trim();
        let scheme = value.split(':').next().unwrap_or("");
        let has_scheme = value.contains(':') && !scheme.contains('/');
        if value.is_empty() || value.starts_with('#') || (has_scheme && !value.starts_with("http"))
        {
            continue;
        }
        out.push(value.replace("&amp;", "&"));
    }
    out
}
