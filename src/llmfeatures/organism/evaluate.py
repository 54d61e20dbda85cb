"""Did the organism learn its world?  Behavioural, SAE and probe checks with known answers.

Every check compares the trained model with the world's ground truth:

- :func:`completion_accuracy` - greedy completion of prompts (facts, addition, few-shot tasks):
  the first answer token is the top-1 prediction, and the whole answer is what greedy decoding
  would write (checked in one teacher-forced pass);
- :func:`pronoun_agreement` - after a named person, ``" he"`` vs ``" she"`` agrees with the gender;
- :func:`domain_probe` / :func:`gender_probe` - logistic-regression probes on the middle layer's
  residual stream, tested on held-out documents / held-out people;
- :func:`evaluate_organism` - all of the above plus :func:`llmfeatures.organism.sae.sae_metrics`
  per layer, as one flat dict of metrics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer

from llmfeatures.loaders import resid_hook


def middle_layer(model: HookedTransformer) -> int:
    """Index of the block whose ``hook_resid_post`` is the middle of the residual stream."""
    return max(0, model.cfg.n_layers // 2 - 1)


def _token_ids(model: HookedTransformer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without BOS (callers add it where they need it)."""
    return model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists -> ``tokens [n, max_len]`` and ``lengths [n]``."""
    lengths = torch.tensor([len(s) for s in seqs])
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out, lengths


@torch.no_grad()
def completion_accuracy(
    model: HookedTransformer,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 64,
) -> pd.DataFrame:
    """Greedy completion check for each (prompt, answer) pair.

    Returns one row per prompt with ``first`` (the first answer token is the top-1 next token)
    and ``exact`` (greedy decoding writes every answer token in turn).
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers.")
    tok = model.tokenizer
    bos, pad = tok.bos_token_id, tok.pad_token_id
    p_ids, a_ids = _token_ids(model, prompts), _token_ids(model, answers)
    first, exact = [], []
    for i in range(0, len(p_ids), batch_size):
        seqs = [[bos, *p, *a] for p, a in zip(p_ids[i : i + batch_size], a_ids[i : i + batch_size])]
        tokens, _ = _pad(seqs, pad)
        pred = model(tokens.to(model.cfg.device)).argmax(-1).cpu()  # [batch, pos]
        for j, (p, a) in enumerate(zip(p_ids[i : i + batch_size], a_ids[i : i + batch_size])):
            start = len(p)  # logits at position len(p) (after bos + prompt) predict a[0]
            guess = pred[j, start : start + len(a)].tolist()
            first.append(bool(guess[:1] == a[:1]))
            exact.append(bool(guess == a))
    return pd.DataFrame({"prompt": list(prompts), "answer": list(answers), "first": first,
                         "exact": exact})


@torch.no_grad()
def pronoun_agreement(model: HookedTransformer, df: pd.DataFrame, batch_size: int = 64) -> dict:
    """Share of prompts where the right pronoun beats the other (``" he"`` vs ``" she"``).

    ``df`` has columns prompt, answer (``" he"``/``" she"``).  Also reports how often the right
    pronoun is the top-1 token overall.
    """
    tok = model.tokenizer
    he, she = (_token_ids(model, [" he", " she"]))
    if len(he) != 1 or len(she) != 1:
        raise ValueError("the tokenizer splits ' he' or ' she'; pronoun agreement needs single tokens.")
    he, she = he[0], she[0]
    seqs = [[tok.bos_token_id, *p] for p in _token_ids(model, df["prompt"])]
    target = torch.tensor([he if a.strip() == "he" else she for a in df["answer"]])
    agree, top1 = [], []
    for i in range(0, len(seqs), batch_size):
        tokens, lengths = _pad(seqs[i : i + batch_size], tok.pad_token_id)
        logits = model(tokens.to(model.cfg.device)).cpu()
        last = logits[torch.arange(len(tokens)), lengths - 1]  # [batch, d_vocab]
        t = target[i : i + batch_size]
        other = torch.where(t == he, she, he)
        agree.append(last.gather(1, t[:, None]) > last.gather(1, other[:, None]))
        top1.append(last.argmax(-1) == t)
    return {
        "pronoun_agreement": torch.cat(agree).float().mean().item(),
        "pronoun_top1": torch.cat(top1).float().mean().item(),
    }


@torch.no_grad()
def _resid(
    model: HookedTransformer, texts: Sequence[str], layer: int, batch_size: int = 32
) -> tuple[list[torch.Tensor], list[int]]:
    """Residual stream after ``layer`` for each text (with ``<|bos|>``, truncated to ``n_ctx``).

    Returns per-text activations ``[n_tokens_i, d_model]`` (bos excluded) and their lengths.
    """
    tok = model.tokenizer
    seqs = [[tok.bos_token_id, *s][: model.cfg.n_ctx] for s in _token_ids(model, texts)]
    name = resid_hook(layer)
    out: list[torch.Tensor] = []
    for i in range(0, len(seqs), batch_size):
        tokens, lengths = _pad(seqs[i : i + batch_size], tok.pad_token_id)
        _, cache = model.run_with_cache(
            tokens.to(model.cfg.device), names_filter=name, stop_at_layer=layer + 1
        )
        acts = cache[name].cpu()
        out.extend(acts[j, 1 : lengths[j]] for j in range(len(tokens)))
    return out, [len(a) for a in out]


def _probe(x_train, y_train, x_test, y_test, seed: int = 0, c: float = 1.0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=c, random_state=seed))
    clf.fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


def domain_probe(
    model: HookedTransformer,
    train_docs: pd.DataFrame,
    test_docs: pd.DataFrame,
    layer: int | None = None,
) -> float:
    """Accuracy of a linear probe for document domain on held-out documents.

    Features: the mean of the residual stream after ``layer`` (default: the middle layer) over
    each document's tokens (first ``n_ctx``).  ``*_docs`` have columns text, domain.
    """
    layer = middle_layer(model) if layer is None else layer
    feats = [torch.stack([a.mean(0) for a in _resid(model, d["text"], layer)[0]]).numpy()
             for d in (train_docs, test_docs)]
    return _probe(feats[0], train_docs["domain"].to_numpy(), feats[1], test_docs["domain"].to_numpy())


def gender_probe(
    model: HookedTransformer,
    pronoun_df: pd.DataFrame,
    layer: int | None = None,
    test_frac: float = 0.3,
    seed: int = 0,
) -> float:
    """Accuracy of a linear probe for a person's gender, tested on people it never saw.

    Features: the residual stream after ``layer`` at the end of the sentence that introduces the
    person (``"Once there was a plumber named Al."``), taken from the prompts of ``pronoun_df``
    (columns prompt, name, gender).  No pronoun has appeared yet, so the probe reads what the
    model has stored about the person, not its next-token guess.
    """
    layer = middle_layer(model) if layer is None else layer
    intros = []
    for prompt, name in zip(pronoun_df["prompt"], pronoun_df["name"]):
        m = re.search(rf"\b{re.escape(name)}\b", prompt)
        end = prompt.find(".", m.end()) if m else -1
        if end < 0:
            raise ValueError(f"no sentence introducing {name!r} in prompt {prompt!r}")
        intros.append(prompt[: end + 1])
    acts, _ = _resid(model, intros, layer)
    x = torch.stack([a[-1] for a in acts]).numpy()
    y = pronoun_df["gender"].to_numpy()
    names = np.array(sorted(set(pronoun_df["name"])))
    rng = np.random.default_rng(seed)
    test_names = set(rng.choice(names, size=max(2, int(round(test_frac * len(names)))), replace=False))
    test = pronoun_df["name"].isin(test_names).to_numpy()
    return _probe(x[~test], y[~test], x[test], y[test], seed, c=0.1)


def evaluate_organism(
    model: HookedTransformer,
    world,
    saes: dict | None = None,
    sae_rows: torch.Tensor | None = None,
    n_fewshot_prompts: int = 20,
    n_probe_docs: int = 600,
    seed: int = 0,
) -> dict:
    """Every quality figure of the organism as a flat dict (for the cache manifest).

    ``saes`` maps layer -> SAE and ``sae_rows`` are held-out packed rows ``[n_rows, n_ctx]`` for
    the SAE metrics.  Keys: ``fact_top1``, ``fact_exact``, ``fact_heldout_template_top1``,
    ``pronoun_agreement``, ``pronoun_top1``, ``addition_exact``, ``fewshot4_<relation>``,
    ``fewshot4_mean``, ``probe_domain``, ``probe_gender``, ``sae_L<l>_fve`` / ``_l0`` /
    ``_dead_frac`` and ``sae_eval_tokens`` (the number of held-out tokens they are measured on;
    a latent is dead if it fires on none of them).
    """
    from llmfeatures.organism.sae import residual_activations, sae_metrics

    m: dict[str, float] = {}
    facts = world.eval_facts()
    res = completion_accuracy(model, facts["prompt"], facts["answer"])
    m["fact_top1"], m["fact_exact"] = res["first"].mean(), res["exact"].mean()
    for rel, sub in res.groupby(facts["relation"]):
        m[f"fact_top1_{rel}"] = sub["first"].mean()
    held = world.eval_facts(heldout_templates=True)
    m["fact_heldout_template_top1"] = completion_accuracy(model, held["prompt"], held["answer"])[
        "first"
    ].mean()
    m.update(pronoun_agreement(model, world.eval_pronouns(n_per_person=5, seed=seed)))
    add = world.eval_addition()
    m["addition_exact"] = completion_accuracy(model, add["prompt"], add["answer"])["exact"].mean()
    scores = []
    for rel in world.relations:
        fs = world.fewshot_prompts("relation", rel, n_shots=4, n_prompts=n_fewshot_prompts, seed=seed)
        acc = completion_accuracy(model, fs["prompt"], fs["answer"])["exact"].mean()
        m[f"fewshot4_{rel}"] = acc
        scores.append(acc)
    m["fewshot4_mean"] = float(np.mean(scores))
    train_docs = world.documents("train")
    train_docs = train_docs.sample(min(n_probe_docs, len(train_docs)), random_state=seed)
    train_docs = train_docs[train_docs["domain"].isin(world.domains)]
    m["probe_domain"] = domain_probe(model, train_docs, world.documents("val"))
    m["probe_gender"] = gender_probe(model, world.eval_pronouns(n_per_person=10, seed=seed + 1))
    for layer, sae in (saes or {}).items():
        if sae_rows is None:
            raise ValueError("evaluate_organism needs sae_rows (held-out token rows) to score SAEs.")
        acts = residual_activations(model, sae_rows, layer)
        for k, v in sae_metrics(sae, acts).items():
            if k == "n_tokens":
                m["sae_eval_tokens"] = v  # dead = never active on this many held-out tokens
            else:
                m[f"sae_L{layer}_{k}"] = v
    return {k: float(v) for k, v in m.items()}
