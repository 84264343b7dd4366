//! `kiln tune` end to end: a run killed with SIGKILL and resumed ends with
//! exactly the uninterrupted run's adapter; bad data is refused by line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{fixture, kiln_command};

/// An alpaca JSONL file of `n` small instruction/answer pairs.
fn write_alpaca(path: &Path, n: usize) {
    let words = ["red", "green", "blue", "cat", "dog", "sun", "moon", "tree"];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let a = words[i % words.len()];
            let b = words[(i / words.len()) % words.len()];
            serde_json::json!({"instruction": format!("Repeat: {a} {b}"), "output": format!("{b} {a}")})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn tune_command(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = kiln_command();
    cmd.args(["tune", "--model", &fixture("llama"), "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args([
            "--rank",
            "4",
            "--batch-size",
            "2",
            "--epochs",
            "3",
            "--lr",
            "1e-3",
            "--seed",
            "7",
            "--save-every",
            "1",
            "--quiet",
        ])
        .args(extra)
        .env("HF_HUB_OFFLINE", "1");
    cmd
}

fn checkpoint_step(out: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(out.join("checkpoint/trainer_state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["step"].as_u64()
}

#[test]
fn a_killed_run_resumed_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_alpaca(&data, 256);
    let whole = dir.path().join("whole");
    let status = tune_command(&data, &whole, &[]).status().unwrap();
    assert!(status.success());

    let cut = dir.path().join("cut");
    let mut child = tune_command(&data, &cut, &[]).spawn().unwrap();
    let start = Instant::now();
    // Kill (SIGKILL) once a few checkpoints have been written.
    loop {
        if checkpoint_step(&cut).is_some_and(|s| s >= 5) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !cut.join("adapter_model.safetensors").exists(),
        "killed before the end"
    );
    let killed_at = checkpoint_step(&cut).unwrap();
    let total = 256 / 2 * 3;
    assert!(killed_at < total, "{killed_at}");

    let status = tune_command(&data, &cut, &["--resume"]).status().unwrap();
    assert!(status.success());
    let a = std::fs::read(whole.join("adapter_model.safetensors")).unwrap();
    let b = std::fs::read(cut.join("adapter_model.safetensors")).unwrap();
    assert!(a == b, "resumed adapter differs from the uninterrupted one");
    assert!(cut.join("loss.png").exists());
    assert!(cut.join("adapter_config.json").exists());
}

#[test]
fn bad_data_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\"\n",
    )
    .unwrap();
    let out = tune_command(&data, &dir.path().join("o"), &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2"), "{err}");

    let out = tune_command(
        &dir.path().join("missing.jsonl"),
        &dir.path().join("o"),
        &[],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.jsonl"), "{err}");

    write_alpaca(&data, 4);
    let out = tune_command(
        &data,
        &dir.path().join("o"),
        &["--target-modules", "nope_proj"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope_proj"), "{err}");
}
