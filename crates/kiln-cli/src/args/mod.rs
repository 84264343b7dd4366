//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

mod common;
mod compose;
mod rag;
mod run;
mod serve;
mod tune;

pub use common::*;
pub use compose::*;
pub use rag::*;
pub use run::*;
pub use serve::*;
pub use tune::*;

/// kiln: run, serve, retrieve with and fine-tune open-weight LLMs locally.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about = "kiln: run open-weight LLMs locally")]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a continuation of a prompt (greedy, sampling or beam search).
    Generate(GenerateArgs),
    /// Chat interactively with streaming replies.
    Chat(ChatArgs),
    /// Show the token ids and pieces of a text.
    Tokenize(TokenizeArgs),
    /// Describe a model: family, size, dtype, context, tensors.
    Inspect(InspectArgs),
    /// Measure prefill and decode speed.
    Bench(BenchArgs),
    /// Convert a Hugging Face model directory to a (quantized) GGUF file.
    Quantize(QuantizeArgs),
    /// Serve models over an OpenAI-compatible HTTP API with a web chat page.
    Serve(ServeArgs),
    /// Embed texts with a sentence-transformers model.
    Embed(EmbedArgs),
    /// Index files (txt, md, html, pdf, jsonl; directories walked) for retrieval.
    Index(IndexArgs),
    /// Search an index (vector, BM25 or hybrid).
    Search(SearchArgs),
    /// Answer a question from an index with sources (RAG).
    Ask(AskArgs),
    /// Score retrieval on judged queries (MAP, nDCG@10, Recall@100, MRR as trec_eval).
    EvalRetrieval(EvalArgs),
    /// Summarise a long document (map-reduce over pieces that fit the model).
    Summarize(SummarizeArgs),
    /// Train a LoRA or IA3 adapter (QLoRA with --quantize) on instruction data.
    Tune(TuneArgs),
    /// Prompt templates: list them, render one, or run one on a model.
    #[command(subcommand)]
    Prompt(PromptCommand),
    /// Count tokens of files (or stdin) with a model's tokenizer.
    Tokens(TokensArgs),
    /// Crawl pages politely (robots.txt, rate limit) to JSONL text, or extract JSON from each.
    Crawl(CrawlArgs),
    /// Run a ReAct agent with tools (calculator, retrieval, fetch, shell) on a task.
    Agent(AgentArgs),
    /// Classify texts into one of a list of labels (constrained output, JSONL out).
    Classify(ClassifyArgs),
    /// Zero-shot classification with an NLI cross-encoder (JSONL out).
    ZeroShot(ZeroShotArgs),
    /// Extract JSON matching a JSON Schema from texts or files (constrained output, JSONL out).
    Extract(ExtractArgs),
    /// Fold an adapter into its base model and write a new checkpoint (or GGUF).
    Merge(MergeArgs),
    /// Write the logits of every position of a prompt to a safetensors file
    /// (to compare kiln with transformers, PEFT or llama.cpp).
    Logits(LogitsArgs),
}
