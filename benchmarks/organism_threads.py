"""Throughput of the organism's two expensive stages with 1 and with 2 torch threads.

Usage: ``python benchmarks/organism_threads.py [book|ci] [--steps 40] [--sae-tokens 200000]``

Trains the scale's model for ``--steps`` steps from scratch and the middle layer's SAE (the widest)
for ``--sae-tokens`` tokens, once per thread count, on the corpus and tokenizer of the built
organism (built first if missing), and prints tokens per second for each.  The organism preset
uses ``cpu_threads`` for the whole build: pick the faster setting on an idle machine.  On a
shared machine the figures mostly measure the other jobs (the load average is printed): with
other single-threaded jobs running, two threads oversubscribe the cores.  Exits non-zero when the
preset's thread count is more than 10% slower than the other on both stages.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale", nargs="?", default="book")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sae-tokens", type=int, default=200_000)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")

    import torch
    from transformer_lens import HookedTransformer

    from llmfeatures.organism.pipeline import _build, _Builder, organism_config
    from llmfeatures.organism.sae import train_sae
    from llmfeatures.organism.tokenizer import load_tokenizer
    from llmfeatures.organism.train import hooked_config, train_model

    cfg = organism_config(args.scale)
    art = _build(args.scale, until="model")
    builder = _Builder(art, cfg, args.scale, torch.device("cpu"))
    rows, val = builder.rows("train"), builder.rows("val")[:8]
    tok = load_tokenizer(art.path / "tokenizer.json")
    layer = cfg.middle_layer
    sae_cfg = replace(cfg.sae_config(layer), training_tokens=args.sae_tokens)
    train_cfg = replace(cfg.train, n_steps=args.steps, eval_every=10**9)
    print(f"load average before: {os.getloadavg()}")
    speed: dict[str, dict[int, float]] = {"model": {}, "sae": {}}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model = HookedTransformer(hooked_config(cfg.model, len(tok), cfg.seed), tokenizer=tok)
        t0 = time.perf_counter()
        train_model(model, rows, val, train_cfg, seed=cfg.seed, progress=False)
        dt = time.perf_counter() - t0
        speed["model"][threads] = args.steps * cfg.train.batch_size * cfg.model.n_ctx / dt
        t0 = time.perf_counter()
        train_sae(model.eval(), rows, layer, sae_cfg, seed=0)
        speed["sae"][threads] = args.sae_tokens / (time.perf_counter() - t0)
        print(f"{threads} thread(s): model {speed['model'][threads]:8.0f} tokens/s, "
              f"SAE ({sae_cfg.expansion * cfg.model.d_model} latents) "
              f"{speed['sae'][threads]:8.0f} tokens/s   load {os.getloadavg()[0]:.2f}")
    mine = cfg.cpu_threads or torch.get_num_threads()
    other = 2 if mine == 1 else 1
    slower = all(speed[s][mine] < 0.9 * speed[s][other] for s in speed)
    print(f"preset cpu_threads={cfg.cpu_threads}: "
          + ("SLOWER than the alternative on both stages" if slower else "not beaten"))
    raise SystemExit(1 if slower else 0)


if __name__ == "__main__":
    main()
