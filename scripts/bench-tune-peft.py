"""The PEFT + torch (CPU) side of scripts/bench-tune.sh: LoRA r=16 on every
linear layer, AdamW, batch 1 of SEQ tokens; prints steady-state tokens/s
(median of steps after the first) and peak RSS.

usage: python3 scripts/bench-tune-peft.py MODEL_DIR SEQ STEPS
"""
import resource
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

model_dir, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
model = get_peft_model(model, config)
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
vocab = model.config.vocab_size
times = []
for step in range(steps):
    ids = torch.randint(0, vocab, (1, seq))
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    times.append(time.perf_counter() - t0)
rates = [seq / t for t in times[1:]]
rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peft tokens/s median {statistics.median(rates):.1f} (steps {[round(r, 1) for r in rates]}), peak RSS {rss_mib:.0f} MiB, threads {torch.get_num_threads()}")
