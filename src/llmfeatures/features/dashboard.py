"""A feature dashboard in plain HTML: works in Jupyter, Colab and the built book, offline.

One unit (an SAE latent or an MLP neuron) per dashboard: firing frequency and activation
histogram, the tokens its output direction promotes and suppresses (direct path through the
unembedding, final LayerNorm ignored), its max-activating examples and examples from several
activation quantiles with every token shaded by the unit's activation, and, on the organism, its
ground-truth purity per label kind.  Everything is inline HTML and SVG (no scripts, no network).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import torch

from llmfeatures.features.engine import mlp_hook, resid_hook
from llmfeatures.features.stats import FeatureStats

_CSS = """
<style>
.llmf-dashboard{font-family:system-ui,sans-serif;font-size:13px;border:1px solid #ccc;
  border-radius:6px;padding:10px 14px;margin:8px 0;max-width:1100px;color:#222;background:#fff}
.llmf-dashboard h4{margin:2px 0 8px 0;font-size:15px}
.llmf-dashboard .llmf-row{display:flex;flex-wrap:wrap;gap:24px}
.llmf-dashboard table{border-collapse:collapse;font-size:12px}
.llmf-dashboard td,.llmf-dashboard th{padding:1px 6px;text-align:left}
.llmf-dashboard .llmf-ex{font-family:ui-monospace,monospace;white-space:pre-wrap;margin:2px 0;
  line-height:1.7}
.llmf-dashboard .llmf-tok{border-radius:2px;padding:1px 0}
.llmf-dashboard .llmf-max{outline:1.5px solid #b34700}
.llmf-dashboard .llmf-pos{color:#0a6b2b}.llmf-dashboard .llmf-neg{color:#a61b1b}
.llmf-dashboard .llmf-muted{color:#666}
</style>
"""


@dataclass
class FeatureDashboard:
    """The HTML of one unit's dashboard; shown by Jupyter and myst-nb via ``_repr_html_``."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str) -> None:
        """Write a stand-alone HTML file."""
        with open(path, "w") as f:
            f.write(f"<!doctype html><meta charset='utf-8'>{self.html}")


def _esc_token(tok: str) -> str:
    return html.escape(tok.replace("\n", "\u23ce"))


def _histogram_svg(hist: np.ndarray, edges: np.ndarray, width: int = 360, height: int = 130) -> str:
    """Bars of the positive-activation histogram on a log x axis (slots 1..n_bins)."""
    inner = hist[1:-1].astype(float)
    nz = np.nonzero(hist)[0]
    if len(nz) == 0:
        return "<p class='llmf-muted'>never fires on this corpus</p>"
    lo, hi = max(nz.min() - 1, 1), min(nz.max() + 1, len(hist) - 2)
    sel = inner[lo - 1 : hi]
    left, bottom = 44, 30
    w, h = width - left - 8, height - bottom - 8
    bw = w / max(len(sel), 1)
    top = sel.max() or 1.0
    bars = []
    for j, c in enumerate(sel):
        bh = h * c / top
        bars.append(f"<rect x='{left + j * bw:.1f}' y='{8 + h - bh:.1f}' width='{max(bw - 1, 1):.1f}' "
                    f"height='{bh:.1f}' fill='#d9730d'/>")
    log_lo, log_hi = math.log10(edges[lo - 1]), math.log10(edges[hi])
    ticks = [f"<text x='{x}' y='{24 + h}' font-size='11' text-anchor='{a}'>{v:.3g}</text>"
             for x, v, a in ((left, edges[lo - 1], "start"), (left + w, edges[hi], "end"))]
    for dec in range(math.ceil(log_lo), math.floor(log_hi) + 1):
        x = left + (dec - log_lo) / (log_hi - log_lo) * w
        ticks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{8 + h}' y2='{12 + h}' stroke='#333'/>")
        if left + 40 < x < left + w - 40:  # a decade label that does not collide with the ends
            ticks.append(f"<text x='{x:.1f}' y='{24 + h}' font-size='11' text-anchor='middle'>"
                         f"{10.0 ** dec:g}</text>")
    return (f"<svg width='{width}' height='{height + 12}' role='img' "
            f"aria-label='activation histogram'>{''.join(bars)}"
            f"<line x1='{left}' x2='{left + w}' y1='{8 + h}' y2='{8 + h}' stroke='#333'/>"
            f"<line x1='{left}' x2='{left}' y1='8' y2='{8 + h}' stroke='#333'/>"
            f"<text x='{left - 4}' y='14' font-size='11' text-anchor='end'>{int(top)}</text>"
            f"<text x='{left - 4}' y='{8 + h}' font-size='11' text-anchor='end'>0</text>"
            f"{''.join(ticks)}"
            f"<text x='{left + w / 2}' y='{height + 10}' font-size='11' text-anchor='middle'>"
            f"activation (log scale) when firing</text>"
            f"<text x='10' y='{8 + h / 2}' font-size='11' text-anchor='middle' "
            f"transform='rotate(-90 10 {8 + h / 2})'>tokens</text></svg>")


def _direction(model, sae, kind: str, layer: int, unit: int) -> torch.Tensor:
    if kind == "sae":
        return sae.W_dec[unit].detach().float()
    return model.blocks[layer].mlp.W_out[unit].detach().float()


def _logit_table(model, direction: torch.Tensor, n: int = 8) -> str:
    logits = direction.to(model.W_U.device) @ model.W_U.detach().float()
    top = torch.topk(logits, n)
    bottom = torch.topk(-logits, n)
    def strs(i: int) -> str:
        return model.tokenizer.decode([i])

    rows = []
    for j in range(n):
        p_tok, p_val = strs(int(top.indices[j])), float(top.values[j])
        n_tok, n_val = strs(int(bottom.indices[j])), -float(bottom.values[j])
        rows.append(f"<tr><td class='llmf-pos'>{_esc_token(repr(p_tok)[1:-1])}</td>"
                    f"<td>{p_val:+.2f}</td><td class='llmf-neg'>{_esc_token(repr(n_tok)[1:-1])}</td>"
                    f"<td>{n_val:+.2f}</td></tr>")
    return ("<table><tr><th colspan=2>promotes</th><th colspan=2>suppresses</th></tr>"
            + "".join(rows) + "</table>")


@torch.no_grad()
def _window_activations(stats: FeatureStats, model, sae, kind: str, layer: int, unit: int,
                        gids: list[int], before: int, after: int) -> list[tuple[list[str], np.ndarray, int]]:
    """Token strings and the unit's activation over a window around each ``gid``.

    Each example re-runs the chunk of its document the engine ran (so the value at ``gid`` is
    the one the engine saw).
    """
    corpus = stats.corpus
    chunk_len = int(stats.meta.get("chunk_len", model.cfg.n_ctx - 1))
    bos = model.tokenizer.bos_token_id
    hook = resid_hook(layer) if kind == "sae" else mlp_hook(layer)
    out = []
    for gid in gids:
        doc, pos = (int(x) for x in corpus.locate(gid))
        start = (pos // chunk_len) * chunk_len
        end = min(len(corpus.doc(doc)), start + chunk_len)
        ids = corpus.doc(doc)[start:end]
        toks = torch.tensor([[bos, *ids.tolist()]], device=next(model.parameters()).device)
        _, cache = model.run_with_cache(toks, names_filter=hook, stop_at_layer=layer + 1)
        x = cache[hook][0, 1:]
        acts = (sae.encode(x)[:, unit] if kind == "sae" else x[:, unit]).float().cpu().numpy()
        lo, hi = max(0, pos - start - before), min(len(ids), pos - start + after + 1)
        strs = [corpus.token_strings[i] for i in ids[lo:hi]]
        out.append((strs, acts[lo:hi], pos - start - lo))
    return out


def _example_html(strs: list[str], acts: np.ndarray | None, at: int, scale: float) -> str:
    spans = []
    for j, s in enumerate(strs):
        a = float(acts[j]) if acts is not None else (scale if j == at else 0.0)
        alpha = 0.0 if scale <= 0 else min(max(a / scale, 0.0), 1.0)
        cls = "llmf-tok llmf-max" if j == at else "llmf-tok"
        title = f" title='{a:.3g}'" if acts is not None else ""
        spans.append(f"<span class='{cls}' style='background:rgba(217,115,13,{alpha:.2f})'"
                     f"{title}>{_esc_token(s)}</span>")
    return "".join(spans)


def feature_dashboard(
    stats: FeatureStats,
    kind: str,
    layer: int,
    unit: int,
    model=None,
    sae=None,
    n_top: int = 6,
    quantiles: tuple[float, ...] = (0.25, 0.5, 0.75, 0.95),
    before: int = 10,
    after: int = 3,
) -> FeatureDashboard:
    """The dashboard of SAE latent (``kind="sae"``) or MLP neuron (``"mlp"``) ``unit`` at ``layer``.

    With ``model`` (and ``sae`` for latents) the examples shade every token by the unit's
    activation and the logit table is shown; without them only the top token is marked.
    """
    site = stats.site(kind, layer)
    if not 0 <= unit < site.n_units:
        raise ValueError(f"unit {unit} is out of range: layer {layer} has {site.n_units} {kind} units.")
    if kind == "sae" and model is not None and sae is None:
        raise ValueError("pass the SAE of this layer (sae=...) to shade examples and list logits.")
    title = (f"Layer {layer} SAE latent {unit}" if kind == "sae"
             else f"Layer {layer} MLP neuron {unit}")
    freq = site.frequency()[unit]
    head = [f"<h4>{html.escape(title)} <span class='llmf-muted'>({html.escape(site.hook)})</span></h4>",
            "<table>",
            f"<tr><td>fires on</td><td>{freq:.3%} of {site.n_tokens:,} tokens</td></tr>",
            f"<tr><td>max activation</td><td>{site.act_max[unit]:.3g}</td></tr>"]
    if site.fire_count[unit] > 0:
        q = site.quantiles([0.5, 0.9])[unit]
        head.append(f"<tr><td>median / 90% when firing</td><td>{q[0]:.3g} / {q[1]:.3g}</td></tr>")
    for k, counts in site.label_counts.items():
        c = counts[unit]
        if c.sum() == 0:
            continue
        best = int(c.argmax())
        name = stats.label_names[k][best]
        head.append(f"<tr><td>purity ({html.escape(k)})</td><td>{c[best] / c.sum():.0%} "
                    f"<b>{html.escape(name)}</b></td></tr>")
    head.append("</table>")
    left = "".join(head)
    middle = _histogram_svg(site.hist[unit], site.bin_edges)
    right = ""
    if model is not None:
        right = _logit_table(model, _direction(model, sae, kind, layer, unit))
    parts = [_CSS, "<div class='llmf-dashboard'>",
             f"<div class='llmf-row'><div>{left}</div><div>{middle}</div><div>{right}</div></div>"]

    scale = float(site.act_max[unit]) or 1.0
    top_ids = [int(g) for g in site.top_ids[unit][:n_top] if g >= 0]
    sections = [("Max-activating examples", top_ids)]
    if site.band_ids.size and site.fire_count[unit] > 0:
        # one section per histogram slot that holds one of the quantiles (slots are a tenth of a
        # decade wide, so neighbouring quantiles often share one)
        qv = np.atleast_1d(site.quantiles(list(quantiles))[unit])
        edges = site.bin_edges
        by_slot: dict[int, list[float]] = {}
        for qq, v in zip(quantiles, qv):
            slot = int(np.clip(np.searchsorted(edges, v, side="right"), 0, len(edges)))
            by_slot.setdefault(slot, []).append(qq)
        for slot, qs in sorted(by_slot.items()):
            ids = list(dict.fromkeys(int(g) for g in site.band_ids[unit, slot] if g >= 0))
            lo = edges[slot - 1] if slot >= 1 else 0.0
            hi = edges[slot] if slot < len(edges) else float("inf")
            names = " and ".join(f"{q:.0%}" for q in qs)
            sections.append((f"Activations {lo:.3g} to {hi:.3g} (the {names} quantile"
                             f"{'s' if len(qs) > 1 else ''})", ids))
    for label, ids in sections:
        parts.append(f"<div><b>{html.escape(label)}</b></div>")
        if not ids:
            parts.append("<p class='llmf-muted'>none</p>")
            continue
        if model is not None:
            windows = _window_activations(stats, model, sae, kind, layer, unit, ids, before, after)
        else:
            windows = []
            for g in ids:
                strs, at = stats.corpus.context(g, before, after)
                windows.append((strs, None, at))
        for strs, acts, at in windows:
            value = acts[at] if acts is not None else float("nan")
            parts.append(f"<div class='llmf-ex'><span class='llmf-muted'>{value:6.2f} </span>"
                         f"{_example_html(strs, acts, at, scale)}</div>")
    parts.append("</div>")
    return FeatureDashboard("".join(parts))
