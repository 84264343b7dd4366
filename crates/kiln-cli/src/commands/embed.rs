//! `kiln embed`: sentence embeddings of texts.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_models::encoder::SentenceEmbedder;

use crate::args::EmbedArgs;

/// Embeds the texts and prints them.
pub fn run(args: EmbedArgs) -> Result<()> {
    let model = SentenceEmbedder::load(Path::new(&args.model))
        .with_context(|| format!("loading embedding model {}", args.model))?;
    let mut texts = args.texts.clone();
    if let Some(file) = &args.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        texts.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    if texts.is_empty() {
        bail!("nothing to embed: pass --text T (repeatable) or --file F");
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = model.embed(&refs)?;
    if args.json {
        let out = serde_json::json!({
            "model": args.model,
            "dimension": model.dimension(),
            "embeddings": vectors,
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "model {} ({} dimensions, {:?} pooling, max {} tokens)",
        args.model,
        model.dimension(),
        model.pooling(),
        model.max_seq_length()
    );
    for (text, v) in texts.iter().zip(&vectors) {
        let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:+.4}")).collect();
        println!("[{} …] {text}", head.join(", "));
    }
    if vectors.len() > 1 {
        println!("cosine similarity to the first text:");
        for (text, v) in texts.iter().zip(&vectors).skip(1) {
            println!("  {:.4}  {text}", cosine(&vectors[0], v));
        }
    }
    Ok(())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
