//! Tools an agent can call: each takes one text input and returns one text
//! observation. The calculator is always safe; HTTP fetch and the shell are
//! off unless the caller builds them (with a host allow-list, and a timeout
//! and no shell interpreter, respectively).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::calculator::{evaluate, format_number};
use crate::AgentError;

/// A tool the agent may call.
pub trait Tool: Send + Sync {
    /// The name the model writes after `Action:`.
    fn name(&self) -> &str;
    /// One line telling the model what the tool does and what input it takes.
    fn description(&self) -> &str;
    /// Runs the tool. Errors become the observation the model sees.
    fn call(&self, input: &str) -> Result<String, AgentError>;
}

/// Arithmetic through [`crate::calculator`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Calculator;

impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }
    fn description(&self) -> &str {
        "evaluates an arithmetic expression such as (3 + 4) * 2.5 or sqrt(2) ^ 3; input: the expression"
    }
    fn call(&self, input: &str) -> Result<String, AgentError> {
        let expr = input
            .trim()
            .trim_matches(|c| c == '"' || c == '`' || c == '\'');
        evaluate(expr)
            .map(format_number)
            .map_err(|e| AgentError::Tool(e.to_string()))
    }
}

/// The function behind a [`FnTool`].
type ToolFn = Box<dyn Fn(&str) -> Result<String, AgentError> + Send + Sync>;

/// A tool made of a closure (e.g. retrieval over a kiln index).
pub struct FnTool {
    name: String,
    description: String,
    run: ToolFn,
}

impl FnTool {
    /// A tool named `name` that runs `run`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        run: impl Fn(&str) -> Result<String, AgentError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            run: Box::new(run),
        }
    }
}

impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn call(&self, input: &str) -> Result<String, AgentError> {
        (self.run)(input)
    }
}

/// Fetches a URL and returns its readable text: only hosts on the
/// allow-list (redirects are followed by hand and checked too), a body
/// limit, a timeout.
#[derive(Debug, Clone)]
pub struct HttpFetch {
    /// Hosts that may be fetched (`example.com` also allows its subdomains).
    pub allowed_hosts: Vec<String>,
    /// Most bytes read from a response; the rest is cut off.
    pub max_bytes: usize,
    /// Time limit per request.
    pub timeout: Duration,
}

impl HttpFetch {
    /// Allows `hosts`, 1 MB bodies, 20-second requests.
    pub fn new(hosts: Vec<String>) -> Self {
        Self {
            allowed_hosts: hosts,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(20),
        }
    }

    fn allowed(&self, url: &str) -> Result<(), AgentError> {
        let host =
            host_of(url).ok_or_else(|| AgentError::Tool(format!("not an http(s) URL: {url}")))?;
        let ok = self
            .allowed_hosts
            .iter()
            .any(|a| host == *a || host.ends_with(&format!(".{a}")));
        if ok {
            Ok(())
        } else {
            Err(AgentError::Tool(format!(
                "host {host} is not on the allow-list"
            )))
        }
    }

    /// GETs `url`: `(final url, content type, body)`; 4xx/5xx are errors.
    pub fn get(&self, url: &str) -> Result<(String, String, Vec<u8>), AgentError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let mut url = url.trim().to_string();
        for _ in 0..6 {
            self.allowed(&url)?;
            let resp = agent
                .get(&url)
                .header("User-Agent", "kiln-agent/0.1")
                .call()
                .map_err(|e| AgentError::Tool(format!("fetching {url}: {e}")))?;
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let to = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        AgentError::Tool(format!("{url}: redirect without a location"))
                    })?;
                url = join_url(&url, to);
                continue;
            }
            if status >= 400 {
                return Err(AgentError::Tool(format!("{url}: HTTP {status}")));
            }
            let kind = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut body = Vec::new();
            resp.into_body()
                .into_reader()
                .take(self.max_bytes as u64)
                .read_to_end(&mut body)
                .map_err(|e| AgentError::Tool(format!("reading {url}: {e}")))?;
            return Ok((url, kind, body));
        }
        Err(AgentError::Tool(format!("{url}: too many redirects")))
    }
}

/// The readable text of a fetched body: HTML through kiln-rag's extractor,
/// text as is, anything else refused.
pub fn readable_text(kind: &str, body: &[u8]) -> Result<String, AgentError> {
    let text = String::from_utf8_lossy(body);
    if kind.contains("html") || (kind.is_empty() && text.trim_start().starts_with('<')) {
        Ok(kiln_rag::load::html_to_text(&text))
    } else if kind.starts_with("text/") || kind.contains("json") || kind.is_empty() {
        Ok(text.into_owned())
    } else {
        Err(AgentError::Tool(format!("not a text page ({kind})")))
    }
}

impl Tool for HttpFetch {
    fn name(&self) -> &str {
        "fetch"
    }
    fn description(&self) -> &str {
        "downloads a web page and returns its text; input: the URL"
    }
    fn call(&self, input: &str) -> Result<String, AgentError> {
        let (_, kind, body) = self.get(input)?;
        readable_text(&kind, &body)
    }
}

/// `scheme://host[:port]/…` → `host`, for http and https only.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Resolves a redirect target against the URL it came from.
pub fn join_url(base: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    if target.starts_with('/') {
        format!("{}{target}", &base[..origin_end])
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|&i| i >= origin_end)
            .map_or(origin_end, |i| i);
        format!("{}/{target}", &base[..dir_end])
    }
}

/// Runs a program without a shell interpreter: the input is split into
/// words (quotes group, nothing else is special), the first word is the
/// program. Killed when it runs past `timeout`.
#[derive(Debug, Clone)]
pub struct Shell {
    /// Programs that may run (`None`: any).
    pub allowed_programs: Option<Vec<String>>,
    /// Time limit.
    pub timeout: Duration,
    /// Most bytes of output returned.
    pub max_output: usize,
}

impl Shell {
    /// Any program, 10-second limit, 64 KB of output.
    pub fn new(timeout: Duration) -> Self {
        Self {
            allowed_programs: None,
            timeout,
            max_output: 64 << 10,
        }
    }
}

/// Splits a command line into words: whitespace separates, `'…'` and
/// `"…"` group, `\` escapes the next character outside single quotes.
pub fn split_words(line: &str) -> Result<Vec<String>, AgentError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err(AgentError::Tool("unclosed ' quote".into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.extend(chars.next()),
                        Some(x) => word.push(x),
                        None => return Err(AgentError::Tool("unclosed \" quote".into())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

impl Tool for Shell {
    fn name(&self) -> &str {
        "shell"
    }
    fn description(&self) -> &str {
        "runs one program with arguments (no shell: no pipes, globs or variables) and returns its output; input: the command line"
    }
    fn call(&self, input: &str) -> Result<String, AgentError> {
        let words = split_words(input.trim())?;
        let Some((program, args)) = words.split_first() else {
            return Err(AgentError::Tool("empty command".into()));
        };
        if let Some(allowed) = &self.allowed_programs {
            if !allowed.iter().any(|a| a == program) {
                return Err(AgentError::Tool(format!(
                    "{program} is not an allowed program"
                )));
            }
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| AgentError::Tool(format!("cannot run {program}: {e}")))?;
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let limit = self.max_output as u64;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.take(limit).read_to_end(&mut buf);
            }
            if let Some(e) = err.as_mut() {
                let _ = e.take(limit).read_to_end(&mut buf);
            }
            buf
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(AgentError::Tool(format!(
                        "{program} ran longer than {:.1} s and was killed",
                        self.timeout.as_secs_f64()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(AgentError::Tool(format!("waiting for {program}: {e}"))),
            }
        };
        let output = reader.join().unwrap_or_default();
        let text = String::from_utf8_lossy(&output).into_owned();
        if status.success() {
            Ok(text)
        } else {
            Ok(format!(
                "(exit status {}) {text}",
                status.code().unwrap_or(-1)
            ))
        }
    }
}
