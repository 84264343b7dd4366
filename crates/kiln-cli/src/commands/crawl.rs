//! `kiln crawl`: polite crawling to JSONL (text, or JSON extracted with a
//! schema).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use kiln_agent::crawl::{crawl, CrawlOptions};
use kiln_agent::tools::host_of;
use kiln_agent::HttpFetch;
use serde_json::json;

use crate::args::{CrawlArgs, ModelArg};

/// `kiln crawl`.
pub fn run(args: CrawlArgs) -> Result<()> {
    let mut hosts = args.allow_hosts.clone();
    if hosts.is_empty() {
        for url in &args.urls {
            match host_of(url) {
                Some(h) => hosts.push(h),
                None => bail!("{url}: not an http(s) URL"),
            }
        }
    }
    let fetch = HttpFetch {
        max_bytes: args.max_bytes,
        ..HttpFetch::new(hosts)
    };
    let options = CrawlOptions {
        max_pages: args.max_pages,
        max_depth: args.depth,
        delay: Duration::from_millis(args.delay_ms),
    };
    let extraction = match (&args.schema, &args.model) {
        (Some(schema), Some(model)) => Some((
            super::structured::load_schema(schema)?,
            super::load_model(&ModelArg {
                model: model.clone(),
                quantize: None,
                adapters: Vec::new(),
            })?,
        )),
        _ => None,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::stdout()),
    };
    let mut failure: Option<anyhow::Error> = None;
    let pages = crawl(&fetch, &args.urls, &options, |page| {
        let line = match (&page.text, &extraction) {
            (Err(e), _) => json!({"url": page.url, "error": e}),
            (Ok(text), None) => json!({"url": page.url, "text": text}),
            (Ok(text), Some((schema, model))) => {
                match super::structured::extract_one(model, None, schema, text, 512) {
                    Ok(data) => json!({"url": page.url, "data": data}),
                    Err(e) => json!({"url": page.url, "error": e.to_string()}),
                }
            }
        };
        if let Err(e) = writeln!(out, "{line}") {
            failure.get_or_insert(e.into());
        }
    })?;
    out.flush()?;
    if let Some(e) = failure {
        return Err(e);
    }
    eprintln!("crawled {pages} pages");
    Ok(())
}
