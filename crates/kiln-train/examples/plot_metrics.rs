//! Redraws a run's loss curve: `cargo run -p kiln-train --example
//! plot_metrics -- RUN_DIR/metrics.jsonl OUT.png`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [metrics, out] = args.as_slice() else {
        return Err("usage: plot_metrics METRICS.jsonl OUT.png".into());
    };
    let steps = kiln_train::trainer::read_metrics(std::path::Path::new(metrics))?;
    kiln_train::plot::write_loss_curve(&steps, std::path::Path::new(out))?;
    Ok(())
}
