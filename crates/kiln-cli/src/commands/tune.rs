//! `kiln tune` (LoRA / IA3 / QLoRA training) and `kiln merge`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_models::adapter::{Adapter, AdapterConfig};
use kiln_models::gguf::export::{export, Scheme};
use kiln_train::data::{load_examples, pack, split_eval, DataOptions};
use kiln_train::optim::AdamWConfig;
use kiln_train::params::TrainableAdapter;
use kiln_train::plot::write_loss_curve;
use kiln_train::trainer::{train, StepMetrics, TrainConfig, TrainJob};

use crate::args::{LogitsArgs, MergeArgs, TuneArgs};

/// The adapter configuration the flags describe (validated by the same
/// parser that reads PEFT's files).
fn adapter_config(args: &TuneArgs, projections: &[String]) -> Result<AdapterConfig> {
    let all_linear = || -> Vec<String> {
        let mut names: Vec<String> = projections
            .iter()
            .filter(|m| !m.ends_with("lm_head") && m.contains('.'))
            .filter_map(|m| m.rsplit('.').next().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let json = match args.method.as_str() {
        "lora" => {
            let targets = match args.target_modules.as_slice() {
                [] => all_linear(),
                [one] if one == "all-linear" => all_linear(),
                names => names.to_vec(),
            };
            serde_json::json!({
                "peft_type": "LORA", "r": args.rank, "lora_alpha": args.alpha,
                "use_rslora": args.rslora, "target_modules": targets,
            })
        }
        "ia3" => {
            let targets = if args.target_modules.is_empty() {
                vec!["k_proj".into(), "v_proj".into(), "down_proj".into()]
            } else {
                args.target_modules.clone()
            };
            let ff = if args.feedforward_modules.is_empty() {
                vec!["down_proj".to_string()]
            } else {
                args.feedforward_modules.clone()
            };
            serde_json::json!({"peft_type": "IA3", "target_modules": targets, "feedforward_modules": ff})
        }
        other => bail!("--method {other:?}: expected lora or ia3"),
    };
    Ok(AdapterConfig::from_json(
        &json.to_string(),
        Path::new("--method/--rank/--target-modules"),
    )?)
}

/// One progress line on stderr, rewritten in place.
fn progress(m: &StepMetrics) {
    let width = 24;
    let done = (m.step as usize * width) / m.total_steps.max(1) as usize;
    let bar: String = "#".repeat(done) + &"-".repeat(width - done);
    let eval = m
        .eval_loss
        .map_or(String::new(), |e| format!(" eval {e:.4}"));
    eprint!(
        "\r[{bar}] step {}/{} loss {:.4}{eval} lr {:.2e} {:.0} tok/s ",
        m.step, m.total_steps, m.loss, m.lr, m.tokens_per_s
    );
    let _ = std::io::stderr().flush();
}

pub fn run(args: TuneArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let tokenizer = model.tokenizer()?;
    let options = DataOptions {
        train_on_inputs: args.train_on_inputs,
        max_seq_len: args.max_seq_len,
        context: model.decoder.spec().max_position_embeddings,
        chat_template: super::template_source(args.template.as_deref())?,
    };
    let mut examples = load_examples(&args.data, tokenizer, &options)
        .with_context(|| format!("reading {}", args.data.display()))?;
    if args.pack {
        let Some(len) = args.max_seq_len else {
            bail!("--pack needs --max-seq-len (the packed sequence length)");
        };
        examples = pack(&examples, len);
    }
    let (train_set, eval_set) = split_eval(examples, args.eval_fraction, args.seed);
    let projections: Vec<String> = model
        .decoder
        .projection_modules()?
        .into_iter()
        .map(|p| p.module)
        .collect();
    let config = adapter_config(&args, &projections)?;
    let adapter = TrainableAdapter::new(config, &model.decoder, args.seed)?;
    let train_config = TrainConfig {
        epochs: args.epochs,
        examples_per_step: args.batch_size.max(1) * args.grad_accum.max(1),
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        decay: args.schedule.parse().map_err(anyhow::Error::msg)?,
        adamw: AdamWConfig {
            weight_decay: args.weight_decay,
            ..AdamWConfig::default()
        },
        max_grad_norm: args.max_grad_norm,
        seed: args.seed,
        save_every: args.save_every,
        eval_every: args.eval_every,
        max_steps: args.max_steps,
    };
    eprintln!(
        "training {} {} parameters on {} examples ({} held out), {} steps",
        adapter.parameter_count(),
        args.method,
        train_set.len(),
        eval_set.len(),
        (train_set.len().div_ceil(train_config.examples_per_step) * args.epochs)
            .min(args.max_steps.map_or(usize::MAX, |m| m as usize))
    );
    let quiet = args.quiet;
    let job = TrainJob {
        base: &model.decoder,
        adapter: &adapter,
        train: &train_set,
        eval: &eval_set,
        config: &train_config,
        run_dir: &args.out,
        resume: args.resume,
    };
    let report = train(&job, |m| {
        if !quiet {
            progress(m);
        }
    })?;
    if !quiet {
        eprintln!();
    }
    adapter.save(&args.out, &args.model.model)?;
    let plot = args.out.join("loss.png");
    write_loss_curve(&report.steps, &plot)?;
    let last = report.steps.last();
    println!(
        "wrote adapter to {} (final loss {}{}; metrics.jsonl, loss.png)",
        args.out.display(),
        last.map_or("-".into(), |m| format!("{:.4}", m.loss)),
        last.and_then(|m| m.eval_loss)
            .map_or(String::new(), |e| format!(", held-out loss {e:.4}"))
    );
    Ok(())
}

pub fn merge(args: MergeArgs) -> Result<()> {
    let adapter = Adapter::load(&args.adapter)
        .with_context(|| format!("loading adapter {}", args.adapter.display()))?;
    if args.model.extension().is_some_and(|e| e == "gguf") {
        return merge_gguf(&args, &adapter);
    }
    let model = kiln_models::Model::load_dir(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    // Checks shapes and names before writing anything.
    model.decoder.with_adapter(&adapter)?;
    let transposed = model.decoder.spec().transposed_linear_weights;
    let to_gguf = args.out.extension().is_some_and(|e| e == "gguf");
    if !to_gguf {
        let n = kiln_models::adapter::merge_into_dir(&args.model, &adapter, &args.out, transposed)?;
        println!("merged {n} tensors into {}", args.out.display());
        return Ok(());
    }
    let ty = args.ty.as_deref().unwrap_or("f16");
    let scheme = Scheme::from_name(ty).ok_or_else(|| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|(_, n)| *n).collect();
        anyhow::anyhow!("--type {ty:?}: expected one of {}", names.join(", "))
    })?;
    let staging = args.out.with_extension("merge-tmp");
    let n = kiln_models::adapter::merge_into_dir(&args.model, &adapter, &staging, transposed)?;
    let result = export(&staging, &args.out, scheme);
    let _ = std::fs::remove_dir_all(&staging);
    let summary = result.with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "merged {n} tensors and wrote {} ({:.1} MiB)",
        args.out.display(),
        summary.bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// `kiln merge` onto a GGUF base: a GGUF out, merged tensors in their own
/// type unless `--type` names one.
fn merge_gguf(args: &MergeArgs, adapter: &Adapter) -> Result<()> {
    if args.out.extension().is_none_or(|e| e != "gguf") {
        bail!(
            "a GGUF base merges into a .gguf file (got {})",
            args.out.display()
        );
    }
    let ty = match args.ty.as_deref() {
        None => None,
        Some(name) => Some(
            kiln_models::kernels::quant::GgmlType::from_name(name)
                .filter(|t| kiln_models::kernels::quant::QUANTIZABLE.contains(t))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--type {name:?} for merged tensors: f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k or q6_k"
                    )
                })?,
        ),
    };
    let summary = kiln_models::adapter::merge_into_gguf(&args.model, adapter, &args.out, ty)
        .with_context(|| format!("merging into {}", args.out.display()))?;
    for (name, from, to) in &summary.retyped {
        eprintln!("{name}: stored as {to:?} (was {from:?})");
    }
    println!(
        "merged {} tensors and wrote {} ({:.1} MiB)",
        summary.changed,
        args.out.display(),
        summary.bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

pub fn logits(args: LogitsArgs) -> Result<()> {
    let model = super::load_model(&args.model)?;
    let ids = match &args.prompt {
        Some(text) => model.tokenizer()?.encode(text, true)?.ids,
        None => args.ids.clone(),
    };
    if ids.is_empty() {
        bail!("nothing to run: pass --prompt TEXT or --ids 1,2,3");
    }
    model
        .write_logits(&ids, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let n = ids.len();
    println!("wrote logits of {n} positions to {}", args.out.display());
    Ok(())
}
