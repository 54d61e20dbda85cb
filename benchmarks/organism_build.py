"""Build the organism at a given scale into a fresh cache and print stage times and quality figures.

Usage: ``python benchmarks/organism_build.py [ci|book|gpu|paper] [--keep DIR]``

The build runs in a temporary ``LLMFEATURES_HOME`` (or ``--keep DIR``), so nothing cached is
reused.  The issue's bars (book scale, 2 CPU cores): whole build <= 20 min (ci: <= 3 min); facts
>= 90% top-1; pronouns >= 95%; per-layer SAE FVE >= 0.8, 4 <= L0 <= 64, dead < 15%; domain and
gender probes >= 95%.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings

BARS = {  # metric: (low, high) - book-scale quality bars from the issue
    "fact_top1": (0.90, None),
    "pronoun_agreement": (0.95, None),
    "probe_domain": (0.95, None),
    "probe_gender": (0.95, None),
}
SAE_BARS = {"fve": (0.8, None), "l0": (4, 64), "dead_frac": (None, 0.15)}
TIME_LIMIT_S = {"ci": 180, "book": 1200}


def _check(value: float, low, high) -> str:
    ok = (low is None or value >= low) and (high is None or value <= high)
    return "ok" if ok else "BELOW BAR"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale", nargs="?", default="book")
    ap.add_argument("--keep", default=None, help="cache folder to build into (default: a temp dir)")
    args = ap.parse_args()
    home = args.keep or tempfile.mkdtemp(prefix="llmfeatures-bench-")
    os.environ["LLMFEATURES_HOME"] = home
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    from llmfeatures.organism.pipeline import build_organism, organism_info

    t0, c0 = time.perf_counter(), time.process_time()
    build_organism(args.scale)
    total = time.perf_counter() - t0
    cpu_total = time.process_time() - c0
    info = organism_info(args.scale)
    m = info["metrics"]
    print(f"\n== organism build at scale {args.scale!r} in {info['path']}")
    print(f"load average at the end: {os.getloadavg()}")
    print("  (cpu s: CPU time of the build process; with one torch thread about the wall time on an"
          " idle machine)")
    for stage in info["stages"]:
        print(f"  stage {stage:<10} {m.get(f'time_{stage}_s', float('nan')):8.1f} s   "
              f"cpu {m.get(f'cpu_{stage}_s', float('nan')):8.1f} s")
    limit = TIME_LIMIT_S.get(args.scale)
    verdict = "" if limit is None else f"  (limit {limit} s: {'ok' if total <= limit else 'OVER'})"
    print(f"  total            {total:8.1f} s   cpu {cpu_total:8.1f} s{verdict}")
    print(f"  cache size       {info['total_bytes'] / 2**20:8.1f} MiB")
    print(f"  final train/val loss: {m['final_train_loss']:.3f} / {m['final_val_loss']:.3f}")
    print("== behaviour and probes (held-out prompts / documents / people)")
    for key, (low, high) in BARS.items():
        print(f"  {key:<28} {m[key]:.3f}  {_check(m[key], low, high)}")
    for key in ("fact_exact", "fact_heldout_template_top1", "pronoun_top1", "addition_exact",
                "fewshot4_mean"):
        print(f"  {key:<28} {m[key]:.3f}")
    print("== few-shot relation accuracy at 4 shots")
    for key in sorted(k for k in m if k.startswith("fewshot4_") and k != "fewshot4_mean"):
        print(f"  {key.removeprefix('fewshot4_'):<28} {m[key]:.3f}")
    print(f"== SAEs ({m.get('sae_eval_tokens', float('nan')):.0f} held-out tokens; dead = never "
          "active on them)")
    n_layers = sum(s.startswith("sae_L") for s in info["stages"])
    for layer in range(n_layers):
        cells = [f"{k}={m[f'sae_L{layer}_{k}']:.3f} {_check(m[f'sae_L{layer}_{k}'], *b)}"
                 for k, b in SAE_BARS.items()]
        print(f"  layer {layer}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
