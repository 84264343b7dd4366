#!/usr/bin/env python3
"""Makes tests/data/encoders/cross_encoder: a tiny random BERT cross-encoder
(BertForSequenceClassification, one label) sharing the tiny BERT fixture's
tokenizer, with golden scores from sentence-transformers' CrossEncoder.

python3 scripts/make_cross_encoder_fixture.py   (needs torch, transformers,
sentence-transformers; not needed to run the tests)
"""
import json
import pathlib
import shutil

import torch
from sentence_transformers import CrossEncoder
from transformers import BertConfig, BertForSequenceClassification

root = pathlib.Path(__file__).resolve().parent.parent / "tests/data/encoders"
src, out = root / "bert", root / "cross_encoder"
out.mkdir(exist_ok=True)
torch.manual_seed(7)
config = BertConfig(
    vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=96, max_position_embeddings=128, num_labels=1,
)
model = BertForSequenceClassification(config).eval()
with torch.no_grad():
    for p in model.parameters():  # wider weights than init: scores that differ
        p.mul_(4.0)
model.save_pretrained(out, safe_serialization=True)
for f in ["tokenizer.json", "tokenizer_config.json"]:
    shutil.copy(src / f, out / f)
pairs = [
    ["how hot does a kiln get", "A bisque firing reaches cone 04, about 1060 °C."],
    ["how hot does a kiln get", "Sourdough needs a lively starter."],
    ["what is glaze made of", "Silica forms the glass; alumina stiffens the melt."],
    ["김치는 무엇인가요", "김치는 발효된 한국 음식입니다."],
    ["short", "a much longer passage " * 20],
]
ce = CrossEncoder(str(out), device="cpu", max_length=128)
raw = ce.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
enc = ce.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation=True, max_length=128)
golden = {
    "pairs": pairs,
    "logits": [float(x) for x in raw],
    "input_ids": enc["input_ids"],
    "token_type_ids": enc["token_type_ids"],
    "max_length": 128,
    "made_with": "sentence-transformers CrossEncoder.predict(activation_fn=Identity)",
}
(out / "golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False))
print(golden["logits"])
