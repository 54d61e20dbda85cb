"""The paper-scale path (Colab): crystals in Gemma-2-2b and its Gemma Scope layer-12 SAE.

- Data: the twelve word-pair relations of Todd et al.'s function-vector datasets, downloaded
  (JSON lists of ``{"input", "output"}``) by :func:`load_function_vector_pairs`.
- Representations (:func:`hf_word_states`): each word fed alone, as the reference does (the
  tokenizer's own BOS, no leading space), the Hugging Face ``hidden_states[i]`` at its last token.
  ``hidden_states[0]`` is the embeddings and ``hidden_states[i]`` the output of block ``i - 1``, so
  the reference's "layer 12" is ``blocks.11.hook_resid_post`` and the Gemma Scope layer-12 SAE
  (``blocks.12.hook_resid_post``) reads ``hidden_states[13]``.
- :func:`gemma_crystals` runs the chapter's measurements (distractor, LDA on held-out pairs, the
  crystal search on the SAE's decoder) on any Hugging Face causal LM and SAE: Gemma-2-2b and
  Gemma Scope by default, small stand-ins in the tests.  :func:`t4_budget` estimates the memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

FV_RELATIONS: tuple[str, ...] = (
    "country-capital", "country-currency", "english-french", "english-german", "english-spanish",
    "landmark-country", "person-instrument", "person-occupation", "person-sport", "present-past",
    "product-company", "singular-plural",
)
FV_URL = ("https://raw.githubusercontent.com/ericwtodd/function_vectors/main/dataset_files/"
          "abstractive/{name}.json")
GEMMA_MODEL = "google/gemma-2-2b"
GEMMA_SAE = ("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical")
GEMMA_PARAMS = 2.61e9
GEMMA_D_MODEL = 2304
T4_GPU_GB = 15.0
COLAB_RAM_GB = 12.7


def _download(url: str, timeout: float = 30.0) -> bytes:
    from urllib.request import urlopen

    with urlopen(url, timeout=timeout) as r:  # noqa: S310 (a fixed https address)
        return r.read()


def load_function_vector_pairs(relations: Sequence[str] = FV_RELATIONS, *,
                               fetch: Callable[[str], bytes] | None = None,
                               max_pairs: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The word pairs of ``relations`` from the function-vector datasets: columns relation, input,
    output, input_chars, output_chars.  ``max_pairs``: keep a seeded random subset of that many
    pairs per relation.  ``fetch(url) -> bytes`` (default: an HTTPS download) lets tests pass a
    stand-in.  Raises :class:`~llmfeatures.loaders.ModelUnavailableError` when offline."""
    from llmfeatures.loaders import ModelUnavailableError

    fetch = fetch or _download
    rng = np.random.default_rng(seed)
    frames = []
    for name in relations:
        if name not in FV_RELATIONS:
            raise ValueError(f"unknown relation {name!r}; choose from {FV_RELATIONS}.")
        url = FV_URL.format(name=name)
        try:
            data = json.loads(fetch(url))
        except (OSError, TimeoutError) as err:
            raise ModelUnavailableError(
                f"The function-vector dataset {name!r} could not be downloaded from {url} "
                f"({type(err).__name__}: {err}). This path needs the internet (run it in Colab); "
                "the chapter's organism needs nothing.") from err
        rows = [(str(p["input"]).strip(), str(p["output"]).strip()) for p in data
                if p.get("input") and p.get("output")]
        if max_pairs is not None and len(rows) > max_pairs:
            rows = [rows[i] for i in np.sort(rng.choice(len(rows), max_pairs, replace=False))]
        frames.append(pd.DataFrame(rows, columns=["input", "output"]).assign(relation=name))
    pairs = pd.concat(frames, ignore_index=True)[["relation", "input", "output"]]
    pairs["input_chars"] = pairs["input"].str.len()
    pairs["output_chars"] = pairs["output"].str.len()
    return pairs


@torch.no_grad()
def hf_word_states(hf_model, tokenizer, words: Sequence[str], layers: Sequence[int],
                   batch_size: int = 64, leading_space: bool = False) -> dict[int, np.ndarray]:
    """``{i: float32 [n_words, d_model]}``: Hugging Face ``hidden_states[i]`` at the last token of
    each word fed alone (the tokenizer's special tokens added, as the reference does).  Batched
    with right padding; runs on the model's device."""
    device = next(hf_model.parameters()).device
    texts = [(" " if leading_space else "") + w for w in words]
    out: dict[int, list[np.ndarray]] = {i: [] for i in layers}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for b in range(0, len(texts), batch_size):
        ids = [tokenizer(t)["input_ids"] for t in texts[b: b + batch_size]]
        width = max(map(len, ids))
        batch = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for j, s in enumerate(ids):
            batch[j, : len(s)] = torch.tensor(s)
            mask[j, : len(s)] = 1
        hs = hf_model(input_ids=batch.to(device), attention_mask=mask.to(device),
                      output_hidden_states=True).hidden_states
        last = torch.tensor([len(s) - 1 for s in ids], device=device)
        for i in layers:
            out[i].append(hs[i][torch.arange(len(ids), device=device), last].float().cpu().numpy())
    return {i: np.concatenate(v) for i, v in out.items()}


def t4_budget(n_words: int, n_features: int, *, params: float = GEMMA_PARAMS,
              d_model: int = GEMMA_D_MODEL, width: int = 16384) -> dict[str, float]:
    """Memory estimate (GB) of :func:`gemma_crystals` on a Colab T4: ``gpu_gb`` (bf16 weights, the
    SAE in float32, a batch of activations) and ``ram_gb`` (word states of 3 layers, the search's
    ``F (F - 1)`` float32 differences and their unit copies for ``n_features`` word features).
    ``fits``: both under the T4's 15 GB and Colab's 12.7 GB of RAM."""
    gpu = params * 2 / 1e9 + 2 * width * d_model * 4 / 1e9 + 0.5
    ram = 3 * n_words * d_model * 4 / 1e9 + 2 * n_features * (n_features - 1) * d_model * 4 / 1e9 + 2
    return {"gpu_gb": gpu, "ram_gb": ram, "fits": float(gpu < T4_GPU_GB and ram < COLAB_RAM_GB)}


def gemma_crystals(pairs: pd.DataFrame | None = None, *, hf_model=None, tokenizer=None, sae=None,
                   layers: Sequence[int] = (0, 12), sae_state: int = 13, max_features: int = 500,
                   config=None, device: str | None = None) -> dict:
    """The chapter on a Hugging Face model (default Gemma-2-2b in bfloat16 and the Gemma Scope
    layer-12 SAE, both from the Hub; pass ``hf_model``/``tokenizer``/``sae`` to use others).

    ``layers``: the ``hidden_states`` indices measured (the reference's 0 and 12);
    ``sae_state``: the index the SAE reads (13 for ``blocks.12.hook_resid_post``);
    ``max_features``: the crystal search keeps at most that many word features (the most strongly
    activated), which bounds its memory (:func:`t4_budget`); it runs on their single decoder
    vectors and on the same words' decoded codes.  Returns ``distractor`` (table), ``lda``
    ``{layer: LDASweep}``, ``features``, ``search`` and ``search_table`` (``{"single",
    "decoded"}``: :class:`CrystalSearch` and its table) and ``vectors`` (the points searched)."""
    from llmfeatures.crystals.analysis import crystal_config
    from llmfeatures.crystals.geometry import length_distractor
    from llmfeatures.crystals.lda import lda_sweep
    from llmfeatures.crystals.search import (
        decoded_words,
        search_against_control,
        strongest_features,
    )

    cfg = config or crystal_config("paper")
    if pairs is None:
        pairs = load_function_vector_pairs()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if hf_model is None or tokenizer is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llmfeatures.loaders import _hub_errors

        with _hub_errors(f"The model {GEMMA_MODEL}", gated=True):
            tokenizer = AutoTokenizer.from_pretrained(GEMMA_MODEL)
            hf_model = AutoModelForCausalLM.from_pretrained(GEMMA_MODEL, torch_dtype=torch.bfloat16)
        hf_model = hf_model.to(device).eval()
    if sae is None:
        from sae_lens import SAE

        from llmfeatures.loaders import _hub_errors

        with _hub_errors(f"The SAE {GEMMA_SAE}", gated=False):
            sae = SAE.from_pretrained(*GEMMA_SAE, device=device)
    vocab = sorted(set(pairs["input"]) | set(pairs["output"]))
    index = {w: i for i, w in enumerate(vocab)}
    xi, yi = pairs["input"].map(index).to_numpy(), pairs["output"].map(index).to_numpy()
    states = hf_word_states(hf_model, tokenizer, vocab, sorted({*layers, sae_state}))
    rel = pairs["relation"].to_numpy()
    target = (pairs.output_chars - pairs.input_chars).to_numpy()
    rows, lda = [], {}
    for i in layers:
        diffs = states[i][yi] - states[i][xi]
        t = length_distractor(diffs, target, rel, n_permutations=cfg.n_permutations, seed=cfg.seed)
        rows.append({"hidden_state": i, "r": t.r, "null_q95": t.null_q95, "p": t.p})
        lda[i] = lda_sweep(diffs, rel, n_folds=cfg.n_folds, n_repeats=cfg.n_repeats,
                           shrinkage=cfg.shrinkage, seed=cfg.seed)
    h = torch.as_tensor(states[sae_state], dtype=sae.W_dec.dtype, device=sae.W_dec.device)
    acts = sae.encode(h).float().detach().cpu().numpy()
    feats = strongest_features(vocab, acts, max_features)
    w_dec = sae.W_dec.detach().float().cpu().numpy()
    words = feats.word.tolist()
    rows_of = feats.word.map(index).to_numpy()
    points = {"single": w_dec[feats.feature.to_numpy()],
              "decoded": decoded_words(acts[rows_of], w_dec)}  # the same words, for memory
    search, table = {}, {}
    for name, v in points.items():
        search[name], table[name] = search_against_control(
            v, words, pairs, ks=cfg.ks, n_controls=cfg.n_controls, min_cosine=cfg.min_cosine,
            min_ratio=cfg.min_ratio, n_neighbours=cfg.n_neighbours, local=cfg.local, seed=cfg.seed)
    return {"distractor": pd.DataFrame(rows), "lda": lda, "features": feats,
            "search": search, "search_table": table, "vectors": points}
