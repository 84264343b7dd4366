//! `kiln index`, `kiln search`, `kiln ask`: thin calls into kiln-rag.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_core::Embedder;
use kiln_models::encoder::SentenceEmbedder;
use kiln_rag::ingest::{index_paths, IndexOptions};
use kiln_rag::retrieve::{search as retrieve, Mode, SearchOptions};
use kiln_rag::split::RecursiveSplitter;
use kiln_store::{Filter, Hit, OpenMode, PgStore, Store, VectorStore, VectorStoreWriter};

use crate::args::{
    AskArgs, EvalArgs, IndexArgs, IndexLocation, RetrievalArgs, SearchArgs, SummarizeArgs,
};

/// The meta key holding the embedding model's path.
const EMBEDDING_PATH: &str = "embedding_path";

fn load_embedder(path: &str) -> Result<SentenceEmbedder> {
    SentenceEmbedder::load(Path::new(path))
        .with_context(|| format!("loading embedding model {path}"))
}

/// Opens the index for reading: a directory, or a PostgreSQL index.
fn open_read(loc: &IndexLocation) -> Result<Box<dyn VectorStore>> {
    Ok(match &loc.store {
        Some(url) => Box::new(PgStore::open(url, &index_name(loc), OpenMode::Read)?),
        None => Box::new(Store::open(&loc.index, OpenMode::Read)?),
    })
}

/// Opens (creating) the index for writing.
fn open_write(loc: &IndexLocation) -> Result<Box<dyn VectorStoreWriter>> {
    Ok(match &loc.store {
        Some(url) => Box::new(PgStore::open(url, &index_name(loc), OpenMode::Write)?),
        None => Box::new(Store::open(&loc.index, OpenMode::Write)?),
    })
}

fn index_name(loc: &IndexLocation) -> String {
    loc.index.display().to_string()
}

/// The embedding model named on the command line, or the index's own.
fn embedder_for(loc: &IndexLocation, store: &dyn VectorStore) -> Result<SentenceEmbedder> {
    match &loc.embedding_model {
        Some(p) => load_embedder(p),
        None => match store.meta(EMBEDDING_PATH)? {
            Some(p) => load_embedder(&p),
            None => bail!("the index does not name its embedding model: pass --embedding-model"),
        },
    }
}

/// `kiln index`.
pub fn index(args: IndexArgs) -> Result<()> {
    let Some(model_path) = args.location.embedding_model.clone() else {
        bail!("kiln index needs --embedding-model (a sentence-transformers directory)");
    };
    let embedder = load_embedder(&model_path)?;
    let mut store = open_write(&args.location)?;
    let absolute =
        std::fs::canonicalize(&model_path).map_or(model_path.clone(), |p| p.display().to_string());
    store.set_meta(EMBEDDING_PATH, &absolute)?;
    let mut splitter = RecursiveSplitter::new(args.chunk_size, args.chunk_overlap);
    match args.chunk_unit.as_str() {
        "chars" => {}
        "tokens" => {
            let tokenizer = embedder.tokenizer().clone();
            splitter = splitter
                .with_length(move |s| tokenizer.encode(s, false).map_or(s.len(), |e| e.ids.len()));
        }
        other => bail!("--chunk-unit {other:?}: use chars or tokens"),
    }
    let options = IndexOptions {
        splitter,
        globs: args.globs.clone(),
        text_field: args.text_field.clone(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let stats = index_paths(
        store.as_mut(),
        &embedder,
        &args.paths,
        &options,
        &mut |done, total, chunks| {
            let rate = chunks as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\rindexing: {done}/{total} files, {chunks} chunks, {rate:.1} embeddings/s   ");
        },
    )?;
    eprintln!();
    for (file, why) in &stats.skipped {
        eprintln!("skipped {file}: {why}");
    }
    println!(
        "indexed {} documents ({} chunks) in {:.1} s; {} unchanged, {} skipped; index {} ({} chunks, model {})",
        stats.indexed,
        stats.chunks,
        started.elapsed().as_secs_f64(),
        stats.unchanged,
        stats.skipped.len(),
        args.location.index.display(),
        store.chunk_count()?,
        embedder.name(),
    );
    if stats.ann_nodes > 0 {
        println!("ANN (HNSW) index holds {} vectors", stats.ann_nodes);
    }
    Ok(())
}

fn find(r: &RetrievalArgs, query: &str) -> Result<Vec<Hit>> {
    let store = open_read(&r.location)?;
    let embedder = embedder_for(&r.location, store.as_ref())?;
    find_in(store.as_ref(), &embedder, r, query)
}

fn find_in(
    store: &dyn VectorStore,
    embedder: &SentenceEmbedder,
    r: &RetrievalArgs,
    query: &str,
) -> Result<Vec<Hit>> {
    let mode: Mode = r.mode.parse()?;
    let filter = filter_of(r)?;
    let pool = if r.rerank.is_some() {
        (r.top_k * 4).max(20)
    } else {
        r.top_k
    };
    let options = SearchOptions {
        k: pool,
        mode,
        filter: filter.as_ref(),
        min_score: r.min_score,
    };
    let hits = retrieve(store, embedder, query, &options)?;
    match &r.rerank {
        None => Ok(hits),
        Some(dir) => {
            let reranker = kiln_models::encoder::CrossEncoder::load(Path::new(dir))
                .with_context(|| format!("loading reranker {dir}"))?;
            Ok(kiln_rag::retrieve::rerank(hits, query, &reranker, r.top_k)?)
        }
    }
}

/// The `--filter` options as one filter.
fn filter_of(r: &RetrievalArgs) -> Result<Option<Filter>> {
    let filters = r
        .filters
        .iter()
        .map(|f| {
            Filter::parse(f).with_context(|| {
                format!("--filter {f:?}: use key=value, key=a|b, key>=n or key<=n")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((!filters.is_empty()).then_some(Filter::And(filters)))
}

fn print_sources(hits: &[Hit]) {
    for (i, h) in hits.iter().enumerate() {
        println!(
            "[{}] {}  (score {:.4}, chars {}..{})",
            i + 1,
            kiln_rag::answer::cite(h),
            h.score,
            h.start,
            h.end
        );
    }
}

/// `kiln search`.
pub fn search(args: SearchArgs) -> Result<()> {
    let hits = find(&args.retrieval, &args.query)?;
    if args.json {
        for h in &hits {
            println!("{}", serde_json::to_string(h)?);
        }
        return Ok(());
    }
    for (i, h) in hits.iter().enumerate() {
        println!(
            "[{}] {} (score {:.4})",
            i + 1,
            kiln_rag::answer::cite(h),
            h.score
        );
        let text: String = h.text.chars().take(300).collect();
        println!("    {}", text.replace('\n', "\n    "));
    }
    Ok(())
}

/// `kiln ask`.
pub fn ask(args: AskArgs) -> Result<()> {
    let generator = crate::args::GeneratorArgs {
        model: args.model.clone(),
        backend: args.backend.clone(),
        backend_model: args.backend_model.clone(),
        backend_timeout: 120,
        template: None,
    };
    let model: Option<Box<dyn kiln_core::TextGenerator>> = match (&args.model, &args.backend) {
        (None, None) if args.no_answer && !args.hyde => None,
        (None, None) => {
            bail!("kiln ask needs --model or --backend (or --no-answer to list the sources)")
        }
        _ => Some(super::agent::generator(&generator)?),
    };
    let greedy = |max_tokens: usize| kiln_core::ChatOptions {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..kiln_core::ChatOptions::default()
    };
    let r = &args.retrieval;
    let store = open_read(&r.location)?;
    let embedder = embedder_for(&r.location, store.as_ref())?;
    let hits = match (&model, args.hyde) {
        (Some(model), true) => {
            let prompt = [kiln_core::ChatMessage::new(
                "user",
                format!("Write a short passage that answers: {}", args.question),
            )];
            let hypothetical = model.chat(&prompt, &greedy(96), &mut |_| {})?;
            eprintln!("hypothetical answer (HyDE): {}", hypothetical.trim());
            let mode: Mode = r.mode.parse()?;
            let filter = filter_of(r)?;
            let options = SearchOptions {
                k: r.top_k,
                mode,
                filter: filter.as_ref(),
                min_score: r.min_score,
            };
            kiln_rag::retrieve::search_hyde(
                store.as_ref(),
                &embedder,
                &args.question,
                &hypothetical,
                &options,
            )?
        }
        _ => find_in(store.as_ref(), &embedder, r, &args.question)?,
    };
    let Some(model) = model.filter(|_| !args.no_answer) else {
        print_sources(&hits);
        return Ok(());
    };
    if hits.is_empty() {
        println!("No source in the index matches the question.");
        return Ok(());
    }
    let messages = kiln_rag::answer::messages(&args.question, &hits);
    let mut stdout = std::io::stdout();
    model.chat(&messages, &greedy(args.max_new_tokens), &mut |piece| {
        let _ = write!(stdout, "{piece}");
        let _ = stdout.flush();
    })?;
    println!("\n\nSources:");
    print_sources(&hits);
    Ok(())
}

/// `kiln eval-retrieval`.
pub fn eval(args: EvalArgs) -> Result<()> {
    use kiln_rag::eval::{evaluate, parse_qrels, parse_queries, Run};
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let queries = parse_queries(&read(&args.queries)?)?;
    let qrels = parse_qrels(&read(&args.qrels)?)?;
    let r = &args.retrieval;
    let store = open_read(&r.location)?;
    let embedder = embedder_for(&r.location, store.as_ref())?;
    let mut run = Run::new();
    let mut trec = String::new();
    for (qid, text) in &queries {
        if !qrels.contains_key(qid) {
            continue;
        }
        // Chunks → documents: a document ranks where its best chunk does.
        let mut docs: Vec<(String, f64)> = Vec::new();
        for h in find_in(store.as_ref(), &embedder, r, text)? {
            if !docs.iter().any(|(d, _)| *d == h.document) {
                docs.push((h.document.clone(), f64::from(h.score)));
            }
        }
        for (rank, (d, s)) in docs.iter().enumerate() {
            trec.push_str(&format!("{qid} Q0 {d} {} {s:.6} kiln\n", rank + 1));
        }
        run.insert(qid.clone(), docs);
    }
    if let Some(p) = &args.run {
        std::fs::write(p, trec).with_context(|| format!("writing {}", p.display()))?;
    }
    let (per, all) = evaluate(&qrels, &run);
    println!("queries   {}", per.len());
    println!("MAP       {:.4}", all.map);
    println!("nDCG@10   {:.4}", all.ndcg_cut_10);
    println!("Recall@100 {:.4}", all.recall[&100]);
    println!("MRR       {:.4}", all.recip_rank);
    println!("P@30      {:.4}", all.p[&30]);
    Ok(())
}

/// `kiln summarize`.
pub fn summarize(args: SummarizeArgs) -> Result<()> {
    use kiln_rag::load::{load_file, Outcome};
    use kiln_rag::summarize::{map_reduce, refine, SummarizeOptions};
    let method = match args.method.as_str() {
        "map-reduce" => map_reduce,
        "refine" => refine,
        other => bail!("--method {other:?}: map-reduce or refine"),
    };
    let text = match load_file(&args.file, "text")? {
        Outcome::Loaded(docs) => docs
            .into_iter()
            .map(|d| d.text)
            .collect::<Vec<_>>()
            .join("\n\n"),
        Outcome::Skipped(why) => bail!("{}: {why}", args.file.display()),
    };
    let generator = super::agent::generator(&args.generator)?;
    let counter = std::sync::Arc::new(super::count::TokenCounter::load(
        args.generator.model.as_deref(),
        args.encoding.as_deref(),
    )?);
    if matches!(*counter, super::count::TokenCounter::Estimate) {
        eprintln!("note: sizing pieces at 4 bytes a token; --encoding counts exactly");
    }
    let options = SummarizeOptions {
        chunk_tokens: args.chunk_tokens,
        overlap_tokens: args.overlap_tokens,
        max_rounds: 4,
        count_tokens: std::sync::Arc::new(move |s: &str| {
            counter.count(s).unwrap_or(s.len().div_ceil(4))
        }),
    };
    let chat_options = kiln_core::ChatOptions {
        max_tokens: Some(args.max_new_tokens),
        temperature: Some(0.0),
        ..kiln_core::ChatOptions::default()
    };
    let started = std::time::Instant::now();
    let summary = method(&text, &options, &mut |messages| {
        eprint!(".");
        generator
            .chat(messages, &chat_options, &mut |_| {})
            .map_err(|e| kiln_rag::RagError::Invalid(e.to_string()))
    })?;
    eprintln!(
        "\n{} pieces, {} model calls, {} collapse rounds, {:.1} s",
        summary.pieces,
        summary.calls,
        summary.rounds,
        started.elapsed().as_secs_f64()
    );
    println!("{}", summary.text);
    Ok(())
}
