//! `kiln inspect`.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::args::InspectArgs;

pub fn run(args: InspectArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let spec = model.spec();
    let mut dtypes: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &model.tensors {
        *dtypes.entry(t.dtype.as_str()).or_default() += 1;
    }
    let params = model.decoder.parameter_count();
    if args.json {
        let value = json!({
            "model": args.model.model,
            "directory": model.files.dir,
            "family": spec.model_type,
            "parameters": params,
            "dtype": spec.dtype,
            "tensor_dtypes": dtypes,
            "context_length": spec.context_length(),
            "hidden_size": spec.hidden_size,
            "layers": spec.num_hidden_layers,
            "attention_heads": spec.num_attention_heads,
            "kv_heads": spec.num_key_value_heads,
            "head_dim": spec.head_dim,
            "vocab_size": spec.vocab_size,
            "gguf_metadata": model.gguf.as_ref().map(|g| g.metadata.iter().cloned().collect::<BTreeMap<_, _>>()),
            "tensors": model.tensors.iter().map(|t| json!({"name": t.name, "dtype": t.dtype, "shape": t.shape})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("model         {}", args.model.model);
    println!("directory     {}", model.files.dir.display());
    println!("family        {}", spec.model_type);
    println!("parameters    {} ({:.1}M)", params, params as f64 / 1e6);
    println!(
        "dtype         {}",
        spec.dtype.as_deref().unwrap_or("unknown")
    );
    println!("context       {}", spec.context_length());
    println!(
        "shape         {} layers, hidden {}, {} heads ({} kv, head_dim {}), vocab {}",
        spec.num_hidden_layers,
        spec.hidden_size,
        spec.num_attention_heads,
        spec.num_key_value_heads,
        spec.head_dim,
        spec.vocab_size
    );
    if let Some(g) = &model.gguf {
        println!(
            "gguf          version {}, {} metadata keys",
            g.version,
            g.metadata.len()
        );
        for (k, v) in &g.metadata {
            println!("  {k:<44} {v}");
        }
    }
    let summary: Vec<String> = dtypes.iter().map(|(d, n)| format!("{n} {d}")).collect();
    println!(
        "tensors       {} ({})",
        model.tensors.len(),
        summary.join(", ")
    );
    let shown = if args.all_tensors { usize::MAX } else { 12 };
    for t in model.tensors.iter().take(shown) {
        println!("  {:<52} {:<5} {:?}", t.name, t.dtype, t.shape);
    }
    if model.tensors.len() > shown {
        println!(
            "  … {} more (--all-tensors or --json lists all)",
            model.tensors.len() - shown
        );
    }
    Ok(())
}
