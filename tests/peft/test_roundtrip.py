"""Round trip with PEFT: adapters trained by `kiln tune` load in PEFT
(`PeftModel.from_pretrained`) and give kiln's logits within 1e-4; a merged
checkpoint written by `kiln merge` equals PEFT's merge_and_unload().

Usage: python3 tests/peft/test_roundtrip.py KILN_BIN
Needs torch, transformers and peft (scripts/setup-test-tools.sh installs them).
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "tests", "data", "models")
PROMPT = "Below is an instruction. Name the colour of the sky."


def kiln(bin_path, *args):
    out = subprocess.run([bin_path, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kiln {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def write_data(path):
    with open(path, "w") as f:
        for i in range(16):
            f.write(json.dumps({"instruction": "Repeat the number.", "input": str(i), "output": f"{i} {i}"}) + "\n")
    return path


def peft_logits(base_dir, adapter_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return model, logits


def check(bin_path, base, method, extra, work):
    base_dir = os.path.join(MODELS, base)
    out = os.path.join(work, f"{base}-{method}")
    kiln(bin_path, "tune", "-m", base_dir, "--data", write_data(os.path.join(work, "data.jsonl")),
         "-o", out, "--method", method, "--epochs", "2", "--lr", "1e-2", "--quiet", *extra)
    dump = os.path.join(work, f"{base}-{method}.safetensors")
    kiln(bin_path, "logits", "-m", base_dir, "--adapter", out, "-p", PROMPT, "-o", dump)
    got = load_file(dump)
    ids = got["input_ids"].tolist()
    model, want = peft_logits(base_dir, out, ids)
    # The adapter was trained (it changes the logits) …
    base_model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        plain = base_model(torch.tensor([ids])).logits[0]
    moved = (want - plain).abs().max().item()
    assert moved > 1e-3, f"{base} {method}: the trained adapter does not change the logits ({moved})"
    # … and PEFT computes what kiln computes.
    diff = (got["logits"] - want).abs().max().item()
    assert diff <= 1e-4, f"{base} {method}: kiln vs PEFT max |diff| {diff}"
    # kiln merge == PEFT merge_and_unload.
    merged_dir = os.path.join(work, f"{base}-{method}-merged")
    kiln(bin_path, "merge", "-m", base_dir, "--adapter", out, "-o", merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    reference = model.merge_and_unload()
    with torch.no_grad():
        a = merged(torch.tensor([ids])).logits[0]
        b = reference(torch.tensor([ids])).logits[0]
    mdiff = (a - b).abs().max().item()
    assert mdiff <= 1e-4, f"{base} {method}: kiln merge vs PEFT merge_and_unload {mdiff}"
    print(f"ok  {base} {method}: kiln vs PEFT {diff:.2e}, merged {mdiff:.2e} (adapter moved logits by {moved:.3f})")


def main():
    bin_path = sys.argv[1]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        check(bin_path, "llama", "lora", ["--rank", "8", "--alpha", "16"], work)
        check(bin_path, "qwen2", "lora", ["--rank", "4", "--rslora", "--target-modules", "q_proj,v_proj"], work)
        check(bin_path, "llama", "ia3", [], work)
        check(bin_path, "qwen2", "ia3", [], work)
    print("PEFT round trip: all passed")


if __name__ == "__main__":
    main()
