"""Size and speed of the organism's generated world, per scale.

Prints, for each scale asked for (default: ci and book): the generation time of all four splits,
documents and characters per split and domain, and how often each fact's canonical statement
appears in the training text (the minimum and median over facts, per relation).

    python benchmarks/world_corpus.py [ci book gpu paper]
"""

from __future__ import annotations

import sys
import time

import pandas as pd

from llmfeatures.organism import build_world
from llmfeatures.organism.world import SPLITS


def report(scale: str) -> None:
    t0 = time.perf_counter()
    world = build_world(scale=scale)
    for split in SPLITS:
        world.documents(split)
    seconds = time.perf_counter() - t0
    summary = world.summary()
    totals = summary.groupby("split", sort=False)[["docs", "chars"]].sum()
    print(f"\n=== scale {scale}: {world}")
    print(f"generation of all splits: {seconds:.2f} s")
    print(totals.to_string())
    train_text = "\n".join(world.texts("train"))
    words = len(train_text.split())
    print(f"train: {len(train_text) / 1e6:.2f} MB, {words:,} whitespace words")
    print(summary[summary.split == "train"].to_string(index=False))
    facts = world.eval_facts()
    facts["count"] = [train_text.count(p + a + ".") for p, a in zip(facts.prompt, facts.answer)]
    print("canonical fact statements per fact in train (min / median):")
    print(facts.groupby("relation")["count"].agg(["min", "median"]).to_string())


def main(argv: list[str]) -> None:
    pd.set_option("display.width", 120)
    for scale in argv or ["ci", "book"]:
        report(scale)


if __name__ == "__main__":
    main(sys.argv[1:])
