"""Build the organism at a given scale into a fresh cache and print stage times and quality figures.

Usage: ``python benchmarks/organism_build.py [ci|book|gpu|paper] [--keep DIR] [--threads N]
[--no-structure]``

The build runs in a temporary ``LLMFEATURES_HOME`` (or ``--keep DIR``: an existing folder is
reused, so ``--keep ~/.cache/llmfeatures`` only measures what is already built), so nothing
cached is reused.  ``--threads N`` overrides the preset's torch thread count (to compare 1 and 2).

Quality bars (book scale, 2 CPU cores): whole build <= 25 min (ci: <= 3 min); facts >= 90% top-1;
pronouns >= 95%; per-layer SAE FVE >= 0.8, 4 <= L0 <= 64, dead < 15%; domain and gender probes
>= 95%.  Structure bars (:mod:`llmfeatures.organism.structure`, book scale): within-relation
parallelism at least 0.1 above shuffled pairs for >= 7 of the 10 relations at the middle layer;
|r| of PC1 vs word-length difference >= 0.4 at some layer, above its permutation null; AMI of the
k = 2 phi lobes with the formal/prose groups >= 0.3; words are represented alone and averaged over
corpus contexts, and a bar is met when either representation meets it.  Exits non-zero when a bar
is missed (the structure bars are checked at the book scale only; smaller scales print them).
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
TIME_LIMIT_S = {"ci": 180, "book": 1500}


def _check(value: float, low, high) -> str:
    ok = (low is None or value >= low) and (high is None or value <= high)
    return "ok" if ok else "BELOW BAR"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale", nargs="?", default="book")
    ap.add_argument("--keep", default=None, help="cache folder to build into (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: preset)")
    ap.add_argument("--no-structure", action="store_true", help="skip the structure figures")
    args = ap.parse_args()
    home = args.keep or tempfile.mkdtemp(prefix="llmfeatures-bench-")
    os.environ["LLMFEATURES_HOME"] = home
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    from dataclasses import replace

    from llmfeatures.organism import pipeline
    from llmfeatures.organism.pipeline import build_organism, organism_info

    if args.threads is not None:
        pipeline.ORGANISM_PRESETS[args.scale] = replace(
            pipeline.ORGANISM_PRESETS[args.scale], cpu_threads=args.threads)
    failed: list[str] = []
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
    if limit is not None and total > limit:
        failed.append("build time")
    print(f"  total            {total:8.1f} s   cpu {cpu_total:8.1f} s{verdict}")
    print(f"  cache size       {info['total_bytes'] / 2**20:8.1f} MiB")
    print(f"  final train/val loss: {m['final_train_loss']:.3f} / {m['final_val_loss']:.3f}")
    print("== behaviour and probes (held-out prompts / documents / people)")
    for key, (low, high) in BARS.items():
        print(f"  {key:<28} {m[key]:.3f}  {_check(m[key], low, high)}")
        if _check(m[key], low, high) != "ok":
            failed.append(key)
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
        width = pipeline.organism_config(args.scale).sae_config(layer).expansion
        print(f"  layer {layer} ({width}x): " + ", ".join(cells))
        failed += [f"sae_L{layer}_{k}" for k, b in SAE_BARS.items()
                   if _check(m[f"sae_L{layer}_{k}"], *b) != "ok"]
    if not args.no_structure:
        failed += structure(args.scale)
    print("\n== " + ("every bar met" if not failed else f"MISSED: {', '.join(failed)}"))
    raise SystemExit(1 if failed else 0)


def structure(scale: str) -> list[str]:
    """Print the structure figures; return the bars missed (checked at the book scale only)."""
    from llmfeatures.organism.structure import (
        REPRESENTATION_NAMES,
        STRUCTURE_BARS,
        structure_figures,
    )

    t0 = time.perf_counter()
    fig = structure_figures(scale)
    mid = fig["middle_layer"]
    print(f"== structure (measured in {time.perf_counter() - t0:.0f} s); a bar is met when words "
          "alone or words in context meet it")
    for kind, par in fig["parallel"].items():
        print(f"  parallelism at the middle layer {mid}, {REPRESENTATION_NAMES[kind]} (mean pairwise cosine of "
              "the difference vectors)")
        for row in par.itertuples():
            print(f"    {row.relation:<24} within {row.within:6.3f}  shuffled {row.shuffled:6.3f} "
                  f"(sd {row.shuffled_sd:.3f})  gap {row.gap:+.3f}  across {row.across:6.3f}")
        print(f"    relations with gap >= {STRUCTURE_BARS['parallel_gap']}: "
              f"{fig['n_parallel'][kind]} of {len(par)} (bar: "
              f"{STRUCTURE_BARS['parallel_relations']}); mean gap {fig['mean_gap'][kind]:+.3f}")
    print(f"    parallelism bar: {'ok' if fig['checks']['parallel'] else 'BELOW BAR'}")
    for kind, length in fig["length"].items():
        print(f"  PC1 of the differences (relation means removed) vs length difference in "
              f"characters, {REPRESENTATION_NAMES[kind]}")
        for L, row in length.iterrows():
            print(f"    layer {L:>2}: r = {row.r:+.3f}  null |r| mean {row.null_mean:.3f}, 95% "
                  f"{row.null_q95:.3f}  (PC1 explains {row.pc1_explained:.1%})")
        L, r, q = fig["length_best"][kind]
        print(f"    strongest at layer {L}: |r| = {r:.3f} (null 95% {q:.3f})")
    print(f"    length bar (|r| >= {STRUCTURE_BARS['length_abs_r']} above its null): "
          f"{'ok' if fig['checks']['length'] else 'BELOW BAR'}")
    lob = fig["lobes"]
    print(f"  k=2 phi lobes of the layer-{lob['layer']} SAE ({lob['n_features']} features) vs "
          f"formal/prose: AMI {lob['ami']:.3f} (null {lob['ami_null_mean']:.3f} +- "
          f"{lob['ami_null_std']:.3f}; bar {STRUCTURE_BARS['group_ami']})  "
          f"{'ok' if fig['checks']['group_lobes'] else 'BELOW BAR'}")
    if scale != "book":
        return []
    return [f"structure:{k}" for k, ok in fig["checks"].items() if not ok]


if __name__ == "__main__":
    main()
