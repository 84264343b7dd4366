//! `kiln agent`: a ReAct agent over a local or remote model with the tools
//! the flags allow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kiln_agent::{
    Calculator, Ending, FnTool, HttpFetch, ReactAgent, RemoteClient, RemoteConfig, Shell, Step,
    Tool, ToolCallingAgent,
};
use kiln_core::TextGenerator;
use kiln_engine::LocalGenerator;
use kiln_rag::retrieve::{search, Mode, SearchOptions};
use kiln_store::{OpenMode, Store};

use crate::args::{AgentArgs, GeneratorArgs, ModelArg};

/// The chat model the flags name.
pub fn generator(args: &GeneratorArgs) -> Result<Box<dyn TextGenerator>> {
    if let Some(url) = &args.backend {
        let config = RemoteConfig {
            timeout: Duration::from_secs(args.backend_timeout),
            ..RemoteConfig::new(url, &args.backend_model)
        };
        return Ok(Box::new(RemoteClient::new(config)));
    }
    let Some(path) = &args.model else {
        bail!("give --model or --backend");
    };
    let model = super::load_model(&ModelArg {
        model: path.clone(),
        quantize: None,
        adapters: Vec::new(),
    })?;
    let template = super::template_source(args.template.as_deref())?;
    let mut local = LocalGenerator::new(Arc::new(model), path, template);
    local.base_params.repetition_penalty = Some(1.1);
    Ok(Box::new(local))
}

/// Search over a kiln index: the best three chunks with their sources.
fn search_tool(index: &Path) -> Result<FnTool> {
    let store = Store::open(index, OpenMode::Read)
        .with_context(|| format!("opening index {}", index.display()))?;
    let Some(embedding) = store.meta("embedding_path")? else {
        bail!("the index does not name its embedding model");
    };
    let embedder = kiln_models::encoder::SentenceEmbedder::load(Path::new(&embedding))
        .with_context(|| format!("loading embedding model {embedding}"))?;
    // The store is used from one thread at a time.
    let store = std::sync::Mutex::new(store);
    Ok(FnTool::new(
        "search",
        "searches the user's documents and returns the most relevant passages; input: a search query",
        move |query: &str| {
            let options = SearchOptions { k: 3, mode: Mode::Hybrid, filter: None, min_score: None };
            let tool_error = |e: String| kiln_agent::AgentError::Tool(e);
            let store = store.lock().map_err(|e| tool_error(e.to_string()))?;
            let hits = search(&*store, &embedder, query, &options).map_err(|e| tool_error(e.to_string()))?;
            Ok(hits
                .iter()
                .map(|h| format!("[{}] {}", kiln_rag::answer::cite(h), h.text.trim()))
                .collect::<Vec<_>>()
                .join("\n\n"))
        },
    ))
}

/// `kiln agent`.
pub fn run(args: AgentArgs) -> Result<()> {
    let mut tools: Vec<Box<dyn Tool>> = Vec::new();
    for name in &args.tools {
        match name.as_str() {
            "calculator" => tools.push(Box::new(Calculator)),
            "search" => {
                let Some(index) = &args.index else {
                    bail!("the search tool needs --index DIR");
                };
                tools.push(Box::new(search_tool(index)?));
            }
            "fetch" => {
                if args.allow_hosts.is_empty() {
                    bail!("the fetch tool needs --allow-host HOST (it reads only the hosts you allow)");
                }
                tools.push(Box::new(HttpFetch::new(args.allow_hosts.clone())));
            }
            "shell" => {
                let mut shell = Shell::new(Duration::from_secs_f64(args.shell_timeout.max(0.1)));
                if !args.allow_programs.is_empty() {
                    shell.allowed_programs = Some(args.allow_programs.clone());
                }
                tools.push(Box::new(shell));
            }
            other => bail!("unknown tool {other:?}: calculator, search, fetch or shell"),
        }
    }
    let model = generator(&args.generator)?;
    let verbose = args.verbose;
    let show = |step: &Step| {
        if verbose {
            if !step.text.trim().is_empty() {
                eprintln!("--- model:\n{}", step.text.trim());
            }
            if let Some((tool, input)) = &step.action {
                eprintln!("--- call: {tool}({input})");
            }
            if let Some(o) = &step.observation {
                eprintln!("--- observation: {}", o.trim());
            }
        }
    };
    let outcome = if args.native_tools {
        let mut agent = ToolCallingAgent::new(model.as_ref(), tools);
        agent.max_steps = args.max_steps;
        agent.options.max_tokens = Some(args.max_new_tokens);
        agent.run(&args.task, show)?
    } else {
        let mut agent = ReactAgent::new(model.as_ref(), tools);
        agent.max_steps = args.max_steps;
        agent.structured = !args.text_format;
        agent.options.max_tokens = Some(args.max_new_tokens);
        agent.run(&args.task, show)?
    };
    match (outcome.ending, outcome.answer) {
        (Ending::Answered, Some(answer)) => println!("{answer}"),
        _ => bail!(
            "no final answer within {} steps (see --verbose)",
            args.max_steps
        ),
    }
    Ok(())
}
