//! `kiln quantize`.

use anyhow::{Context, Result};
use kiln_models::gguf::export::{export, Scheme};
use kiln_models::hub::resolve_model_dir;
use kiln_models::HubOptions;

use crate::args::QuantizeArgs;

pub fn run(args: QuantizeArgs) -> Result<()> {
    let scheme = Scheme::from_name(&args.ty).ok_or_else(|| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|(_, n)| *n).collect();
        anyhow::anyhow!("--type {:?}: expected one of {}", args.ty, names.join(", "))
    })?;
    let dir = resolve_model_dir(&args.model, &HubOptions::from_env())
        .with_context(|| format!("finding model {}", args.model))?;
    let summary = export(&dir, &args.output, scheme)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let types: Vec<String> = summary
        .types
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    println!(
        "wrote {} ({:.1} MiB; tensors: {})",
        args.output.display(),
        summary.bytes as f64 / (1024.0 * 1024.0),
        types.join(", ")
    );
    Ok(())
}
