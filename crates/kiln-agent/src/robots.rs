//! robots.txt: the groups for our user agent (or `*`), `Allow`/`Disallow`
//! with `*` and `$` patterns (longest match wins, `Allow` on ties, as RFC
//! 9309 says), and `Crawl-delay`.

/// The rules that apply to one user agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// `(allow, pattern)`.
    rules: Vec<(bool, String)>,
    /// Seconds between requests the site asks for.
    pub crawl_delay: Option<f64>,
}

impl Robots {
    /// Parses `text` for `agent` (matched case-insensitively as a prefix of
    /// a `User-agent` line's value; `*` groups apply when no group names it).
    pub fn parse(text: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        let mut mine = Robots::default();
        let mut star = Robots::default();
        let mut found_mine = false;
        // The agents of the group being read; a rule line ends the agent list.
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if key == "user-agent" {
                if in_rules {
                    agents.clear();
                    in_rules = false;
                }
                agents.push(value.to_ascii_lowercase());
                continue;
            }
            in_rules = true;
            let is_mine = agents
                .iter()
                .any(|a| a != "*" && agent.starts_with(a.as_str()));
            let is_star = agents.iter().any(|a| a == "*");
            found_mine |= is_mine;
            let targets: Vec<&mut Robots> = match (is_mine, is_star) {
                (true, true) => vec![&mut mine, &mut star],
                (true, false) => vec![&mut mine],
                (false, true) => vec![&mut star],
                (false, false) => vec![],
            };
            for t in targets {
                match key.as_str() {
                    "allow" => t.rules.push((true, value.to_string())),
                    // An empty Disallow allows everything.
                    "disallow" if !value.is_empty() => t.rules.push((false, value.to_string())),
                    "crawl-delay" => t.crawl_delay = value.parse().ok(),
                    _ => {}
                }
            }
        }
        if found_mine {
            mine
        } else {
            star
        }
    }

    /// Whether `path` (with its query) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if matches(pattern, path) {
                let len = pattern.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// robots.txt pattern matching: a prefix match where `*` is any run of
/// characters and a final `$` anchors the end.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    glob(pattern.as_bytes(), path.as_bytes(), anchored)
}

fn glob(p: &[u8], s: &[u8], anchored: bool) -> bool {
    match p.split_first() {
        None => !anchored || s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..], anchored)),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..], anchored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rules_and_patterns() {
        let text = "User-agent: *\nDisallow: /private\nAllow: /private/open\nCrawl-delay: 2\n\n\
                    User-agent: other\nDisallow: /\n\n# comment\nUser-agent: kiln\nUser-agent: x\nDisallow: /*.pdf$\nDisallow: /tmp/\n";
        let star = Robots::parse(text, "somebot");
        assert!(!star.allows("/private/a"));
        assert!(star.allows("/private/open/b"));
        assert!(star.allows("/public"));
        assert_eq!(star.crawl_delay, Some(2.0));
        let kiln = Robots::parse(text, "kiln-agent/0.1");
        assert!(kiln.allows("/private/a"), "its own group replaces *");
        assert!(!kiln.allows("/docs/a.pdf"));
        assert!(kiln.allows("/docs/a.pdf?x=1"));
        assert!(!kiln.allows("/tmp/x"));
        assert!(Robots::parse("", "kiln").allows("/anything"));
        assert!(Robots::parse("User-agent: *\nDisallow:\n", "kiln").allows("/x"));
    }
}
