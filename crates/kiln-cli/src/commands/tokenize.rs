//! `kiln tokenize`.

use anyhow::{Context, Result};
use kiln_models::{HubOptions, Model};
use serde_json::json;

use crate::args::TokenizeArgs;

pub fn run(args: TokenizeArgs) -> Result<()> {
    let tokenizer = Model::load_tokenizer(&args.model.model, &HubOptions::from_env())
        .with_context(|| format!("loading the tokenizer of {}", args.model.model))?;
    // --no-special: no BOS/EOS, and `<s>`-like text is plain text (llama.cpp's tests).
    let tokenizer = if args.no_special {
        tokenizer.with_special_parsing(false)
    } else {
        tokenizer
    };
    let enc = tokenizer.encode(&args.text, !args.no_special)?;
    if args.json {
        let value = json!({"ids": enc.ids, "pieces": enc.pieces, "count": enc.ids.len()});
        println!("{}", serde_json::to_string(&value)?);
    } else {
        for (id, piece) in enc.ids.iter().zip(&enc.pieces) {
            println!("{id:>8}  {piece:?}");
        }
        println!("{} tokens", enc.ids.len());
    }
    Ok(())
}
