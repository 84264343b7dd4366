#!/usr/bin/env python3
"""Writes the README's fine-tuning demo data: sentences to classify as
question/statement and into one of six topics (the seed's WizardLM
classifier use case). Train and test use disjoint subjects, so the test set
measures generalisation, not recall. Deterministic (seeded)."""
import json
import random
import sys
from pathlib import Path

TOPICS = {
    "science": (
        ["photosynthesis", "black holes", "the periodic table", "plate tectonics",
         "DNA replication", "quantum entanglement", "the speed of light", "volcanic eruptions"],
        ["the water cycle", "gravitational waves", "cell division", "chemical bonds"],
    ),
    "sports": (
        ["the offside rule in football", "marathon training", "the Tour de France", "tennis serves",
         "the Olympic decathlon", "basketball free throws", "cricket bowling", "swimming strokes"],
        ["the World Cup final", "ski jumping", "baseball pitching", "rugby scrums"],
    ),
    "food": (
        ["sourdough bread", "Italian pasta sauces", "fermented kimchi", "French pastries",
         "spicy curries", "sushi rolls", "chocolate tempering", "grilled vegetables"],
        ["homemade pizza dough", "Mexican tacos", "vegan desserts", "barbecue ribs"],
    ),
    "technology": (
        ["smartphone batteries", "cloud computing", "programming languages", "electric car charging",
         "graphics cards", "home wifi routers", "machine learning models", "open source software"],
        ["solid state drives", "web browsers", "5G networks", "laptop keyboards"],
    ),
    "history": (
        ["the Roman Empire", "the French Revolution", "the Egyptian pyramids", "the Industrial Revolution",
         "medieval castles", "the Cold War", "the Ming dynasty", "the Viking raids"],
        ["the fall of Constantinople", "the American Civil War", "the Aztec empire", "the first printing presses"],
    ),
    "travel": (
        ["backpacking in Southeast Asia", "cheap flights to Lisbon", "train journeys across Switzerland",
         "hotels in Tokyo", "visiting national parks", "packing for a long trip",
         "road trips along the coast", "travel insurance"],
        ["cruises in Norway", "hostels in Berlin", "visa rules for Canada", "beaches in Greece"],
    ),
}

QUESTIONS = [
    "What do you know about {s}?",
    "Can you tell me more about {s}?",
    "Why is {s} so interesting?",
    "Where can I learn about {s}?",
    "Is {s} worth reading about?",
    "How would you explain {s} to a child?",
]
STATEMENTS = [
    "I spent the afternoon reading about {s}.",
    "My friend is obsessed with {s}.",
    "We talked about {s} at dinner yesterday.",
    "There is a new documentary about {s}.",
    "Our teacher spent the whole lesson on {s}.",
    "I think {s} is underrated.",
]

INSTRUCTION = (
    "Classify the sentence below. Reply with its type (question or statement) and its "
    "topic (science, sports, food, technology, history or travel), like: statement, food\n\n"
    "Sentence: {x}"
)


def rows(split: int, rng: random.Random):
    for topic, subjects in TOPICS.items():
        for s in subjects[split]:
            for kind, frames in (("question", QUESTIONS), ("statement", STATEMENTS)):
                for frame in rng.sample(frames, 2):
                    sentence = frame.format(s=s)
                    yield {
                        "messages": [
                            {"role": "user", "content": INSTRUCTION.format(x=sentence)},
                            {"role": "assistant", "content": f"{kind}, {topic}"},
                        ],
                        "sentence": sentence,
                        "label": f"{kind}, {topic}",
                    }


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "data/demo")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, name in ((0, "train"), (1, "test")):
        items = list(rows(split, rng))
        rng.shuffle(items)
        with open(out / f"classify-{name}.jsonl", "w") as f:
            for item in items:
                f.write(json.dumps(item) + "\n")
        print(f"{out / f'classify-{name}.jsonl'}: {len(items)} examples")


if __name__ == "__main__":
    main()
