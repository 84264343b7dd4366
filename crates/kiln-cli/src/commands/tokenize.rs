//! `kiln tokenize`.

use anyhow::Result;
use serde_json::json;

use crate::args::TokenizeArgs;

pub fn run(args: TokenizeArgs) -> Result<()> {
    let model = super::load_model(&args.model.model)?;
    let enc = model.tokenizer()?.encode(&args.text, !args.no_special)?;
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
