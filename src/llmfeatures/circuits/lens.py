"""Reading the residual stream in vocabulary space: the logit lens and direct logit attribution.

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``; the residual stream before the
first block is ``blocks.0.hook_resid_pre`` (= ``hook_embed`` + ``hook_pos_embed``), called
``"embed"`` here.

- :func:`logit_lens` applies the final LayerNorm (recomputed for each layer's stream, as
  TransformerLens's ``cache.accumulated_resid(apply_ln=True)`` does) and the unembedding to the
  residual stream after every layer, and reports the rank and probability of the right answer.
- :func:`direct_logit_attribution` splits the task metric (answer logit minus the mean competitor
  logit) into what each component writes directly: embeddings, each attention layer and MLP
  (``cache.decompose_resid``), each head (``cache.stack_head_results``) and each MLP neuron
  (``cache.stack_neuron_results``).  Each write is divided by the final LayerNorm's cached scale
  (``apply_ln=True``), the TransformerLens convention; that needs the LayerNorm's weights folded
  into the next matrices, which :func:`prepare_model` does (``model.process_weights_``).  The
  parts then add up to the metric exactly, up to the unembedding bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer

from llmfeatures.circuits.tasks import EncodedTask, Task, encode_task, length_groups


def prepare_model(model: HookedTransformer) -> HookedTransformer:
    """Fold every LayerNorm's weights into the following matrices and centre the writing weights
    and unembedding, in place (``model.process_weights_``); the model's outputs do not change.

    Models from ``HookedTransformer.from_pretrained`` are already processed; the organism is
    trained with plain LayerNorms, so call this once after ``load_model("organism")``.
    """
    if model.cfg.normalization_type in ("LN", "RMS"):
        model.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    return model


def _check_folded(model: HookedTransformer) -> None:
    if model.cfg.normalization_type in ("LN", "RMS"):
        raise ValueError(
            "direct logit attribution needs the final LayerNorm's weights folded into W_U; call "
            "llmfeatures.circuits.prepare_model(model) first (it runs model.process_weights_)"
        )


def layer_labels(model: HookedTransformer) -> list[str]:
    """``["embed", "0", ..., "n_layers-1"]``: the residual stream before block 0 and after each."""
    return ["embed", *map(str, range(model.cfg.n_layers))]


def _encoded(model: HookedTransformer, task: Task | EncodedTask) -> EncodedTask:
    return task if isinstance(task, EncodedTask) else encode_task(model, task)


@torch.no_grad()
def logit_lens(model: HookedTransformer, task: Task | EncodedTask,
               batch_size: int = 64) -> pd.DataFrame:
    """Rank (1 = top; tokens with an equal logit rank ahead of the answer) and probability of each
    prompt's answer token, read at the last position of the residual stream before block 0 and
    after every block.

    Returns a long frame: prompt (index), layer (label from :func:`layer_labels`), depth
    (0 = embed), rank, prob, and rank_among (1 = the answer beats every competitor).
    """
    enc = _encoded(model, task)
    n_layers = model.cfg.n_layers
    names = {f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)}
    names |= {f"blocks.{n_layers - 1}.hook_resid_post", "ln_final.hook_scale"}
    rank = torch.empty(n_layers + 1, len(enc), dtype=torch.long)
    prob = torch.empty(n_layers + 1, len(enc))
    among = torch.empty(n_layers + 1, len(enc), dtype=torch.long)
    for idx, toks in length_groups(enc.tokens, batch_size):
        _, cache = model.run_with_cache(toks.to(model.cfg.device), names_filter=names.__contains__)
        resid = cache.accumulated_resid(apply_ln=True, pos_slice=-1)  # [layer+1, batch, d_model]
        logits = model.unembed(resid).float().cpu()  # [layer+1, batch, d_vocab]
        ans = enc.answer[idx]
        a_logit = logits.gather(2, ans[None, :, None].expand(n_layers + 1, -1, 1))
        rank[:, idx] = (logits >= a_logit).sum(-1)  # ties count against the answer
        prob[:, idx] = logits.softmax(-1).gather(2, ans[None, :, None].expand(
            n_layers + 1, -1, 1))[..., 0]
        oth, mask = enc.others[idx].clamp(min=0), enc.others_mask[idx]
        o_logit = logits.gather(2, oth[None].expand(n_layers + 1, -1, -1))
        among[:, idx] = ((o_logit >= a_logit) & mask[None]).sum(-1) + 1
    labels = layer_labels(model)
    rows = [(i, labels[d], d, int(rank[d, i]), float(prob[d, i]), int(among[d, i]))
            for d in range(n_layers + 1) for i in range(len(enc))]
    return pd.DataFrame(rows, columns=["prompt", "layer", "depth", "rank", "prob", "rank_among"])


def first_layer_in_top(lens: pd.DataFrame, k: int = 5) -> pd.Series:
    """Per prompt, the first depth (0 = embed) at which the answer ranks in the top ``k``;
    ``-1`` if it never does.  ``lens`` is the output of :func:`logit_lens`."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    hit = lens[lens["rank"] <= k].groupby("prompt")["depth"].min()
    prompts = sorted(lens["prompt"].unique())
    return hit.reindex(prompts, fill_value=-1).astype(int).rename(f"first_depth_top{k}")


@torch.no_grad()
def write_norms(model: HookedTransformer, texts: list[str], max_tokens: int = 64,
                batch_size: int = 32) -> pd.DataFrame:
    """Mean L2 norm per token of what each component writes into the residual stream
    (``cache.decompose_resid``: ``hook_embed``, ``hook_pos_embed``, each ``attn_out`` and
    ``mlp_out``) and of the stream itself after each block (``cache.accumulated_resid``).

    Texts are cut to ``max_tokens`` tokens after BOS; BOS itself is left out (its stream is
    an outlier in most models).  Columns: component, kind (embed/attn/mlp/resid), layer (-1 for
    the embeddings and the stream before block 0), norm.
    """
    from llmfeatures.circuits.tasks import encode_prompts

    tokens = [t[: max_tokens + 1] for t in encode_prompts(model, texts) if len(t) > 2]
    if not tokens:
        raise ValueError("write_norms needs texts of at least two tokens")
    sums: dict[str, float] = {}
    n_tok = 0
    for _, toks in length_groups(tokens, batch_size):
        _, cache = model.run_with_cache(toks.to(model.cfg.device))
        comps, labels = cache.decompose_resid(return_labels=True)
        resid = cache.accumulated_resid()  # [n_layers + 1, batch, pos, d_model]
        stacks = [(comps, [_pretty(lab) for lab in labels]),
                  (resid, [f"resid {lab}" for lab in layer_labels(model)])]
        for stack, names in stacks:
            norms = stack[:, :, 1:].float().norm(dim=-1).sum((1, 2)).cpu()
            for name, v in zip(names, norms.tolist(), strict=True):
                sums[name] = sums.get(name, 0.0) + v
        n_tok += toks[:, 1:].numel()
    rows = []
    for name, total in sums.items():
        if name.startswith("resid"):
            lab = name.split(" ", 1)[1]
            rows.append((name, "resid", -1 if lab == "embed" else int(lab), total / n_tok))
        elif name in ("embed", "pos_embed"):
            rows.append((name, "embed", -1, total / n_tok))
        else:
            layer, kind = name[1:].split(" ")
            rows.append((name, kind, int(layer), total / n_tok))
    return pd.DataFrame(rows, columns=["component", "kind", "layer", "norm"])


@dataclass
class DLAResult:
    """Direct logit attribution of the task metric, averaged over prompts.

    ``components``: Series over ``embed``, ``pos_embed``, ``L{l} attn``, ``L{l} mlp``;
    ``heads``: ``[n_layers, n_heads]``; ``neurons``: ``[n_layers, d_mlp]``; ``per_prompt``: the
    component attributions per prompt ``[n_prompts, n_components]``; ``bias``: the unembedding
    bias's share; ``metric``: the model's metric per prompt (it equals the row sums plus bias).
    """

    components: pd.Series
    heads: np.ndarray
    neurons: np.ndarray
    per_prompt: pd.DataFrame
    bias: np.ndarray
    metric: np.ndarray

    def head_table(self) -> pd.Series:
        """Mean attribution per head, indexed ``"L{layer}H{head}"``."""
        n_layers, n_heads = self.heads.shape
        return pd.Series({f"L{layer}H{h}": float(self.heads[layer, h])
                          for layer in range(n_layers) for h in range(n_heads)})

    def top_neurons(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` neurons with the largest absolute mean attribution."""
        flat = np.argsort(-np.abs(self.neurons), axis=None)[:n]
        layers, units = np.unravel_index(flat, self.neurons.shape)
        return pd.DataFrame({"layer": layers, "neuron": units,
                             "dla": self.neurons[layers, units]})


def _directions(model: HookedTransformer, enc: EncodedTask, idx: list[int]) -> torch.Tensor:
    """``W_U[:, answer] - mean W_U[:, competitors]`` per prompt, ``[batch, d_model]``."""
    w_u = model.W_U.detach().float()
    oth, mask = enc.others[idx].clamp(min=0), enc.others_mask[idx].to(w_u.device)
    o_dirs = w_u[:, oth.to(w_u.device)]  # [d_model, batch, k]
    mean_o = (o_dirs * mask).sum(-1) / mask.sum(-1)
    return (w_u[:, enc.answer[idx].to(w_u.device)] - mean_o).T


def _bias_share(model: HookedTransformer, enc: EncodedTask, idx: list[int]) -> torch.Tensor:
    b_u = model.b_U.detach().float().cpu()
    oth, mask = enc.others[idx].clamp(min=0), enc.others_mask[idx]
    return b_u[enc.answer[idx]] - (b_u[oth] * mask).sum(-1) / mask.sum(-1)


@torch.no_grad()
def direct_logit_attribution(model: HookedTransformer, task: Task | EncodedTask,
                             batch_size: int = 64) -> DLAResult:
    """What each component writes directly onto the task metric at the last position.

    The model must have its LayerNorms folded (:func:`prepare_model`).  Per-neuron attributions
    use ``stack_neuron_results(..., project_output_onto=...)``, so the ``[d_mlp, d_model]`` writes
    are never materialised.
    """
    _check_folded(model)
    enc = _encoded(model, task)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    per_prompt, heads_sum, neurons_sum = None, torch.zeros(n_layers * n_heads), None
    rows: dict[int, np.ndarray] = {}
    bias = np.zeros(len(enc))
    labels: list[str] = []
    for idx, toks in length_groups(enc.tokens, batch_size):
        _, cache = model.run_with_cache(toks.to(model.cfg.device))
        dirs = _directions(model, enc, idx)  # [batch, d_model]
        comps, labels = cache.decompose_resid(apply_ln=True, pos_slice=-1, return_labels=True)
        comp_attr = torch.einsum("cbd,bd->bc", comps.float(), dirs).cpu()
        heads = cache.stack_head_results(layer=-1, pos_slice=-1, apply_ln=True)
        heads_sum += torch.einsum("cbd,bd->c", heads.float(), dirs).cpu()
        if model.cfg.attn_only:
            ns = torch.zeros(n_layers, 0)
        else:  # all layers' neurons (the stack covers layers below its argument), ln_final scale
            stack = cache.stack_neuron_results(n_layers, pos_slice=-1, apply_ln=True,
                                               project_output_onto=dirs.T)  # [L*d_mlp, b, b]
            ns = torch.diagonal(stack.float(), dim1=1, dim2=2).sum(-1).cpu()
            ns = ns.reshape(n_layers, model.cfg.d_mlp)
        neurons_sum = ns if neurons_sum is None else neurons_sum + ns
        for b, i in enumerate(idx):
            rows[i] = comp_attr[b].numpy()
        bias[idx] = _bias_share(model, enc, idx).numpy()
    pretty = [_pretty(lab) for lab in labels]
    per_prompt = pd.DataFrame(np.stack([rows[i] for i in range(len(enc))]), columns=pretty)
    metric = per_prompt.sum(axis=1).to_numpy() + bias
    assert neurons_sum is not None
    return DLAResult(
        components=per_prompt.mean(axis=0),
        heads=(heads_sum / len(enc)).reshape(n_layers, n_heads).numpy(),
        neurons=(neurons_sum / len(enc)).numpy(),
        per_prompt=per_prompt,
        bias=bias,
        metric=metric,
    )


def _pretty(label: str) -> str:
    """``"0_attn_out"`` -> ``"L0 attn"``; ``"embed"`` stays."""
    if "_" in label and label[0].isdigit():
        layer, kind = label.split("_", 1)
        return f"L{layer} {kind.removesuffix('_out')}"
    return label


__all__ = [
    "DLAResult",
    "direct_logit_attribution",
    "first_layer_in_top",
    "layer_labels",
    "logit_lens",
    "prepare_model",
    "write_norms",
]
