"""The language-model half of chapter 6: prompts, greedy accuracy, last-token representations,
CD by layer and the CD-accuracy R^2.

Fast tests use a tiny random ``HookedTransformer`` with a small BPE trained on the world's few-shot
texts; the ``slow`` ones load (or build, ~3 min) the ci organism.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

import llmfeatures
from llmfeatures.icl import lm
from llmfeatures.organism.fewshot import bitwise
from llmfeatures.organism.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def world():
    return llmfeatures.load_world(scale="ci")


@pytest.fixture(scope="module")
def tiny(world):
    """A random 2-layer model with a real BPE tokenizer (BOS prepended, pad token set)."""
    texts = list(lm.build_prompts(world, n_shots=3, n_prompts=20).prompt)
    tok = train_tokenizer(texts, vocab_size=400)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=160, d_vocab=len(tok),
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg, tokenizer=tok)
    return model.eval()


# ------------------------------------------------------------------------------------ prompts
def _items(prompt: str) -> list[list[str]]:
    return [item.split(" -> ") for item in prompt.split(" ; ")]


def test_build_prompts_format_and_ground_truth(world):
    df = lm.build_prompts(world, n_shots=4, n_prompts=6, seed=3)
    assert set(df.family) == set(world.fewshot_families)
    assert (df.groupby(["family", "task"]).size() == 6).all()
    for fam, tasks in world.fewshot_families.items():
        assert set(df[df.family == fam].task) == set(tasks) and "null" in tasks
    assert df.prompt.str.endswith(" ->").all() and df.answer.str.startswith(" ").all()
    for row in df.itertuples():
        items = _items(row.prompt)
        assert len(items) == 5 and items[-1] == [row.query + " ->"]
        demos, query = items[:-1], items[-1][0][: -len(" ->")]
        assert len(demos) == 4 and all(len(d) == 2 for d in demos) and query == row.query
        pairs = [*map(tuple, demos), (row.query, row.answer.strip())]
        for x, y in pairs:  # every demonstration and the answer follow the task's rule
            if row.family == "bitwise":
                a, b = (int(v, 2) for v in x.split())
                assert int(y, 2) == bitwise(row.task, a, b)
            elif row.family == "relation":
                if row.task == "null":
                    assert y == x
                else:
                    assert (x, y) in world.relations[row.task]
            else:
                words = x.replace(",", "").split()
                assert y in words
                if row.task == "null":
                    assert y == words[0]


def test_build_prompts_rejects_unknown_family(world):
    with pytest.raises(ValueError, match="unknown few-shot families"):
        lm.build_prompts(world, families=["arithmetic"])


def test_pos_prompts_from_tagged_sentences(world):
    sents = world.tagged_sentences(30, seed=1)
    df = lm.pos_prompts_from_sentences(sents, n_shots=2, n_prompts=5, seed=0)
    assert len(df) == 7 * 5 and (df.family == "pos").all()
    lookup = {" ".join(w for w, _ in s): s for s in sents}
    for row in df.itertuples():
        assert len(_items(row.prompt)) == 3
        tagged = lookup[row.query]
        want = tagged[0][0] if row.task == "null" else next(w for w, t in tagged if t == row.task)
        assert row.answer == " " + want
    with pytest.raises(ValueError, match="lacks tags"):
        lm.pos_prompts_from_sentences([[("dogs", "noun")]] * 5, n_shots=1, n_prompts=1)


def test_map_ptb_tags():
    ptb = [("He", "PRP"), ("quickly", "RB"), ("ate", "VBD"), ("the", "DT"), ("big", "JJ"),
           ("apple", "NN"), ("*T*-1", "-NONE-"), ("in", "IN"), ("Paris", "NNP")]
    mapped = lm.map_ptb_tags(ptb)
    assert mapped is not None and ("*T*-1", "other") not in mapped
    assert dict(mapped)["the"] == "other" and dict(mapped)["ate"] == "verb"
    assert lm.map_ptb_tags(ptb[:3]) is None  # lacks noun, adjective, preposition


# ---------------------------------------------------------------------------- representations
def test_last_token_representations_shape_and_padding(world, tiny):
    df = lm.build_prompts(world, n_shots=2, n_prompts=2, seed=0)
    prompts = list(df.prompt)  # lengths differ across families: batches are padded
    lengths = {len(tiny.to_tokens(p)[0]) for p in prompts}
    assert len(lengths) > 3
    reps = lm.last_token_representations(tiny, prompts, batch_size=16, progress=False)
    # layers -1 (embeddings), 0, 1 in that order
    assert reps.shape == (tiny.cfg.n_layers + 1, len(prompts), tiny.cfg.d_model)
    one = torch.stack([lm.last_token_representations(tiny, [p], progress=False)[:, 0]
                       for p in prompts], 1)
    torch.testing.assert_close(reps, one, atol=1e-5, rtol=1e-5)
    # the same as the unpadded forward pass' last position
    _, cache = tiny.run_with_cache(prompts[0])
    torch.testing.assert_close(reps[2, 0], cache["blocks.1.hook_resid_post"][0, -1])
    torch.testing.assert_close(reps[0, 0], cache["blocks.0.hook_resid_pre"][0, -1])
    torch.testing.assert_close(reps[1, 0], cache["blocks.0.hook_resid_post"][0, -1])
    sub = lm.last_token_representations(tiny, prompts, layers=[0], progress=False)
    torch.testing.assert_close(sub[0], reps[1], atol=1e-5, rtol=1e-5)  # layer 0 runs block 0 only
    with pytest.raises(ValueError, match="out of range"):
        lm.last_token_representations(tiny, prompts, layers=[5], progress=False)


def test_too_long_prompt_raises_or_truncates(tiny):
    long = " ; ".join(["01011 11001 -> 10010"] * 80) + " ; 10100 01111 ->"
    with pytest.raises(ValueError, match="fewer shots or pass truncate=True"):
        lm.last_token_representations(tiny, [long], progress=False)
    with pytest.warns(UserWarning, match="1 of 1 prompts were longer") as caught:
        reps = lm.last_token_representations(tiny, [long], truncate=True, progress=False)
    assert caught[0].filename == __file__  # the warning points at the reader's call
    # truncation keeps the last tokens: the same as the prompt's tail after BOS
    ids = tiny.to_tokens(long, truncate=False)[0]
    tail = torch.cat([ids[:1], ids[len(ids) - tiny.cfg.n_ctx + 1:]])
    _, cache = tiny.run_with_cache(tail[None])
    torch.testing.assert_close(reps[-1, 0], cache["blocks.1.hook_resid_post"][0, -1])


# ----------------------------------------------------------------------------------- accuracy
def test_accuracy_matches_generate(world, tiny):
    # a random model generates byte-level debris; bias it towards whole-word tokens (" abc") so
    # that its greedy continuations are text that tokenizes back to themselves
    word = torch.tensor([t.startswith("Ġ") and t[1:].isalnum()
                         for t, _ in sorted(tiny.tokenizer.get_vocab().items(), key=lambda x: x[1])])
    old_bias = tiny.b_U.data.clone()
    tiny.b_U.data[~word] -= 1e4
    try:
        _accuracy_matches_generate(world, tiny)
    finally:
        tiny.b_U.data.copy_(old_bias)


def _accuracy_matches_generate(world, tiny):
    df = lm.build_prompts(world, families=["bitwise", "relation"], n_shots=2, n_prompts=3)
    df = df.groupby("family").head(12).reset_index(drop=True)
    n_new = [len(tiny.to_tokens(a, prepend_bos=False)[0]) for a in df.answer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = [tiny.generate(p, max_new_tokens=n, do_sample=False, verbose=False,
                             return_type="tokens")[0, -n:] for p, n in zip(df.prompt, n_new,
                                                                           strict=True)]
    # answers the model is forced to know: its own greedy continuations, kept when they are
    # text that tokenizes back to the same tokens and starts with a space, as answers do
    text = [tiny.tokenizer.decode(g.tolist()) for g in gen]
    keep = [t.startswith(" ") and t.strip() == t[1:] and
            tiny.to_tokens(t, prepend_bos=False)[0].tolist() == g.tolist()
            for t, g in zip(text, gen, strict=True)]
    known = df.assign(answer=text)[keep]
    assert len(known) >= 4
    pred = lm.predict_answers(tiny, known, batch_size=4, progress=False)
    assert pred.correct.all(), pred[["prompt", "answer", "prediction"]]
    acc = lm.icl_accuracy(tiny, known, batch_size=3, progress=False)
    assert set(acc.columns) >= {"family", "task", "accuracy", "n"}
    assert (acc.accuracy == 1.0).all() and acc.n.sum() == len(known)
    # a wrong answer of the same length is never counted
    wrong = known.assign(answer=known.answer + "x")
    assert lm.icl_accuracy(tiny, wrong, progress=False).accuracy.max() == 0.0


def test_missing_columns_are_named(tiny):
    with pytest.raises(ValueError, match=r"lacks columns \['answer'"):
        lm.icl_accuracy(tiny, pd.DataFrame({"prompt": ["a ->"], "family": ["f"], "task": ["t"]}))


# ------------------------------------------------------------------------------- CD and R^2
def test_cd_from_representations_planted():
    g = torch.Generator().manual_seed(0)
    n, tasks = 20, ["a", "b", "c"]
    df = pd.DataFrame({"prompt": "p", "answer": " x", "family": ["sep"] * 3 * n + ["mix"] * 3 * n,
                       "task": [t for t in tasks for _ in range(n)] * 2})
    centers = torch.eye(3, 8) * 20
    sep = centers.repeat_interleave(n, 0) + torch.randn(3 * n, 8, generator=g)
    mix = torch.randn(3 * n, 8, generator=g)
    reps = torch.stack([torch.cat([sep, mix]), torch.cat([mix, sep])])  # 2 "layers"
    cd = lm.cd_from_representations(reps, df, k=5, layers=[0, 1])
    mean = cd[cd.concept == "mean"].set_index(["family", "layer"]).cd
    assert mean["sep", 0] == 1.0 and mean["mix", 1] == 1.0
    assert mean["mix", 0] < 0.6 and mean["sep", 1] < 0.6
    assert lm.best_layers(cd).to_dict() == {"sep": 0, "mix": 1}
    # rows without names are those of last_token_representations: the embeddings (-1), 0, 1, ...
    default = lm.cd_from_representations(reps, df, k=5)
    assert lm.best_layers(default).to_dict() == {"sep": -1, "mix": 0}


def test_r2_against_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.random(9), rng.random(9)
    slope, icpt = np.polyfit(x, y, 1)
    r2_np = 1 - ((y - (slope * x + icpt)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert lm.r_squared(x, y) == pytest.approx(r2_np)
    assert np.isnan(lm.r_squared([1, 1, 1], [0, 1, 2]))
    # the table version: per-task CD at the best layer against accuracy
    tasks = [f"t{i}" for i in range(9)]
    rows = [{"family": "f", "n_shots": 4, "layer": 0, "concept": t, "cd": 0.1} for t in tasks]
    rows += [{"family": "f", "n_shots": 4, "layer": 1, "concept": t, "cd": float(v)}
             for t, v in zip(tasks, x, strict=True)]
    rows += [{"family": "f", "n_shots": 4, "layer": layer, "concept": "mean", "cd": cd}
             for layer, cd in ((0, 0.1), (1, float(x.mean())))]
    acc = pd.DataFrame({"family": "f", "task": tasks, "accuracy": y})
    summary, points = lm.cd_accuracy_r2(pd.DataFrame(rows), acc)
    assert summary.loc[0, "layer"] == 1 and summary.loc[0, "n_tasks"] == 9
    assert summary.loc[0, "r2"] == pytest.approx(r2_np)
    np.testing.assert_allclose(points.sort_values("task").cd, x)
    drop = lm.cd_accuracy_r2(pd.DataFrame(rows), acc.assign(task=tasks[:-1] + ["null"]),
                             include_null=False)[0]
    assert drop.loc[0, "n_tasks"] == 8


# ------------------------------------------------------------ shared inputs, input baseline
def test_shared_input_families(world):
    fams = lm.shared_input_families(world)
    assert set(fams) == {"country", "person", "pos", "bitwise"}
    assert fams["country"] == ("country_capital", "country_currency", "country_language", "null")
    for fam in ("country", "person"):
        inputs = {tuple(sorted(x for x, _ in world.relations[t])) for t in fams[fam] if t != "null"}
        assert len(inputs) == 1  # every task maps the same inputs
    assert not any("singular_plural" in tasks for tasks in fams.values())


def test_shared_input_prompts_follow_their_rule(world):
    df = lm.shared_input_prompts(world, n_shots=3, n_prompts=5, seed=2)
    assert (df.groupby(["family", "task"]).size() == 5).all()
    assert (df.query_prompt == df["query"] + " ->").all()
    countries = {x for x, _ in world.relations["country_capital"]}
    for row in df[df.family.isin(["country", "person"])].itertuples():
        pairs = [*map(tuple, _items(row.prompt)[:-1]), (row.query, row.answer.strip())]
        assert len(pairs) == 4 and len({x for x, _ in pairs}) == 4
        for x, y in pairs:
            assert y == x if row.task == "null" else (x, y) in world.relations[row.task]
        assert (row.query in countries) == (row.family == "country")
    capped = lm.shared_input_prompts(world, families=["country"], n_shots=500, n_prompts=2)
    assert (capped.n_shots == len(countries) - 1).all()
    with pytest.raises(ValueError, match="unknown shared-input families"):
        lm.shared_input_prompts(world, families=["relation"])


def test_input_baseline_equals_cd_without_context(world, tiny):
    """With no demonstrations the prompt is the query alone: both CDs must agree exactly."""
    df = lm.shared_input_prompts(world, families=["country", "bitwise"], n_shots=0, n_prompts=12)
    cd = lm.cd_with_input_baseline(tiny, df, k=5, progress=False)
    assert np.array_equal(cd.cd.to_numpy(), cd.cd_input.to_numpy())
    with_context = lm.cd_with_input_baseline(
        tiny, lm.shared_input_prompts(world, families=["country"], n_shots=3, n_prompts=12), k=5,
        progress=False)
    assert not np.array_equal(with_context.cd.to_numpy(), with_context.cd_input.to_numpy())


def test_input_baseline_catches_a_planted_confound(tiny):
    """Two tasks whose queries come from different word pools are told apart by the query alone
    (each query recurs, its copies are its nearest neighbours); from one shared pool, each word
    equally often in both tasks, they are not (a point's copies outvote it: leave-one-out)."""
    pools = {"a": ["France", "Spain", "Japan"], "b": ["Al", "Bob", "Eve"]}

    def table(shared: bool) -> pd.DataFrame:
        rows = []
        for task, pool in pools.items():
            for i in range(15):
                q = (pools["a"] if shared else pool)[i % 3]
                rows.append({"prompt": f"x -> y ; {q} ->", "answer": " z", "family": "f",
                             "task": task, "query_prompt": lm.query_prompt(q)})
        return pd.DataFrame(rows)

    confounded = lm.baseline_table(lm.cd_with_input_baseline(tiny, table(False), k=3,
                                                             progress=False))
    shared = lm.baseline_table(lm.cd_with_input_baseline(tiny, table(True), k=3, progress=False))
    assert confounded.cd_input.iloc[0] == 1.0
    assert shared.cd_input.iloc[0] <= 0.5
    with pytest.raises(ValueError, match="query_prompt"):
        lm.cd_with_input_baseline(tiny, table(True).drop(columns="query_prompt"))


# ------------------------------------------------------------------------------- organism
@pytest.fixture(scope="module")
def organism():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return llmfeatures.load_model("organism", scale="ci")


@pytest.mark.slow
def test_organism_encodes_shared_input_concepts_beyond_the_query(organism, world):
    """On the ci organism the country and person tasks, which share their inputs, separate at
    some block well above what the query alone tells (about chance); the mixed relation family,
    whose tasks take countries, people or words, is partly separable from the query alone."""
    df = lm.shared_input_prompts(world, families=["country", "person"], n_shots=4, n_prompts=20)
    table = lm.baseline_table(lm.cd_with_input_baseline(organism, df, progress=False))
    for row in table.itertuples():
        assert row.cd_input <= row.chance + 0.15, row
        assert row.cd >= row.cd_input + 0.2, row
    mixed = lm.build_prompts(world, families=["relation"], n_shots=4, n_prompts=20)
    mixed["query_prompt"] = [lm.query_prompt(q) for q in mixed["query"]]
    mixed_table = lm.baseline_table(lm.cd_with_input_baseline(organism, mixed, progress=False))
    assert mixed_table.cd_input.iloc[0] >= mixed_table.chance.iloc[0] + 0.1


@pytest.mark.slow
def test_organism_accuracy_and_r2(organism, world):
    df = lm.build_prompts(world, families=["relation"], n_shots=4, n_prompts=20)
    acc = lm.icl_accuracy(organism, df, progress=False)
    assert acc[acc.task != "null"].accuracy.mean() > 0.1
    cd = lm.cd_by_layer_lm(organism, prompts=df, progress=False)
    summary, points = lm.cd_accuracy_r2(cd, acc)
    assert len(points) == len(world.fewshot_families["relation"])
    assert 0 <= summary.loc[0, "r2"] <= 1


def _greedy_steered(model, prompt: str, n_new: int, layer: int, vec: torch.Tensor) -> str:
    """Reference: one unpadded prompt, the vector added at its last token on every pass."""
    tokens = model.to_tokens(prompt)
    pos = tokens.shape[1] - 1

    def add(act, hook):
        act[:, pos] += vec
        return act

    for _ in range(n_new):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(lm.resid_hook(layer), add)])
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return model.tokenizer.decode(tokens[0, -n_new:].tolist())


def test_steering_adds_at_the_query_position(world, tiny):
    df = lm.build_prompts(world, families=["relation", "bitwise"], n_shots=2, n_prompts=2)
    df = df.groupby("family").head(5).reset_index(drop=True)
    vecs = 4 * torch.randn(len(df), tiny.cfg.d_model, generator=torch.Generator().manual_seed(0))
    steered = lm.predict_answers(tiny, df, batch_size=3, progress=False, steer=(1, vecs))
    plain = lm.predict_answers(tiny, df, batch_size=3, progress=False)
    zero = lm.predict_answers(tiny, df, batch_size=3, progress=False,
                              steer=(1, torch.zeros_like(vecs)))
    assert list(zero.prediction) == list(plain.prediction)
    with torch.no_grad():
        for i, row in df.iterrows():
            n_new = len(tiny.to_tokens(row.answer, prepend_bos=False)[0])
            assert steered.prediction[i] == _greedy_steered(tiny, row.prompt, n_new, 1, vecs[i])
    assert list(steered.prediction) != list(plain.prediction)  # the vectors do something
    with pytest.raises(ValueError, match="one vector per prompt"):
        lm.predict_answers(tiny, df, progress=False, steer=(1, vecs[:2]))
    with pytest.raises(ValueError, match="out of range"):
        lm.predict_answers(tiny, df, progress=False, steer=(9, vecs))


def test_task_vector_intervention_table(world, tiny):
    df = lm.build_prompts(world, families=["bitwise"], n_shots=2, n_prompts=3)
    out = lm.task_vector_intervention(tiny, df, layer=1, progress=False)
    tasks = world.fewshot_families["bitwise"]
    assert list(out.columns) == ["family", "task", "condition", "accuracy", "n"]
    assert len(out) == 3 * len(tasks) and set(out.condition) == {"none", "task mean", "null mean"}
    assert out.accuracy.between(0, 1).all() and (out.n == 3).all()
    with pytest.raises(ValueError, match="no prompts for"):
        lm.task_vector_intervention(tiny, df, layer=1, means_df=df[df.task != "null"], progress=False)


# ------------------------------------------------------------- a model with a known task code
WORDS = [f"w{i}" for i in range(10)]


def _word_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<s>", *WORDS, "->", ";"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<s>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<s>",
                                   unk_token="<s>", pad_token="<s>", add_bos_token=True,
                                   name_or_path="toy-words")


def _coded_model():
    """A 2-layer model whose blocks do nothing, with two planted hooks.

    The encoder (on the embeddings) counts the demonstrations that shift a word by one
    (``w3 -> w4``) and those that copy it, and writes ``[n_shift, n_copy + 1.5]`` into two
    spare residual dimensions at the last token: a task code that leans towards copying, so one
    shift demonstration is not enough.  The decoder (after layer 0) answers the query shifted if
    the first coordinate wins, else copied.  Adding the shift task's mean code at layer 0
    therefore helps the one-shot shift prompts, and adding the copy (Null) task's mean turns the
    shift prompts into copies.
    """
    tok = _word_tokenizer()
    V = len(tok)
    ids = {w: tok.convert_tokens_to_ids(w) for w in [*WORDS, "->"]}
    arrow = ids["->"]
    cfg = HookedTransformerConfig(n_layers=2, d_model=V + 2, n_heads=1, d_head=4, d_mlp=4,
                                  n_ctx=64, d_vocab=V, act_fn="relu", normalization_type=None,
                                  device="cpu", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg, tokenizer=tok)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, :V] = torch.eye(V)  # a token's embedding is its one-hot id
        model.W_U[:V] = torch.eye(V)

    def token_ids(act: torch.Tensor) -> torch.Tensor:
        return act[..., :V].argmax(-1)

    def encode(act: torch.Tensor, hook=None) -> torch.Tensor:
        for row, seq in enumerate(token_ids(act).tolist()):
            arrows = [j for j, t in enumerate(seq[:-1]) if t == arrow]
            pairs = [(seq[j - 1], seq[j + 1]) for j in arrows]
            shift = sum(y == x + 1 or (x, y) == (ids["w9"], ids["w0"]) for x, y in pairs)
            copy = sum(y == x for x, y in pairs)
            act[row, -1, V:] = torch.tensor([float(shift), copy + 1.5])
        return act

    def decode(act: torch.Tensor, hook=None) -> torch.Tensor:
        act = act.clone()
        query = token_ids(act[:, -2])
        shifted = (query - ids["w0"] + 1) % 10 + ids["w0"]
        answer = torch.where(act[:, -1, V] > act[:, -1, V + 1], shifted, query)
        act[:, -1, :V] = 10 * torch.nn.functional.one_hot(answer, V).to(act.dtype)
        return act

    model.add_hook("blocks.0.hook_resid_pre", encode, is_permanent=True)
    model.add_hook("blocks.1.hook_resid_pre", decode, is_permanent=True)
    return model.eval()


def _shift_copy_prompts(seed: int) -> pd.DataFrame:
    """Prompts of family "toy": task "shift" (w3 -> w4) and "null" (w3 -> w3), 1 and 4 shots."""
    rng = np.random.default_rng(seed)
    rows = []
    for task, step in (("shift", 1), ("null", 0)):
        for n_shots in (1, 4, 1, 4, 1, 4):
            xs = rng.integers(0, 10, n_shots + 1)
            items = [f"w{x} -> w{(x + step) % 10}" for x in xs[:-1]]
            prompt = " ; ".join([*items, f"w{xs[-1]} ->"])
            rows.append((prompt, f" w{(xs[-1] + step) % 10}", "toy", task))
    return pd.DataFrame(rows, columns=["prompt", "answer", "family", "task"])


def test_task_vector_intervention_moves_answers_the_known_way():
    model = _coded_model()
    df = _shift_copy_prompts(0)
    base = lm.predict_answers(model, df, progress=False)
    shift = base.task == "shift"
    # without help the one-shot shift prompts are copied, the four-shot ones are shifted
    assert base[shift & (base.prompt.str.count("->") == 2)].correct.sum() == 0
    assert base[shift & (base.prompt.str.count("->") == 5)].correct.all()
    assert base[~shift].correct.all()
    out = lm.task_vector_intervention(model, df, layer=0, means_df=_shift_copy_prompts(1),
                                      alpha=2.0, progress=False)
    acc = out.set_index(["task", "condition"]).accuracy
    assert acc["shift", "none"] == pytest.approx(0.5)
    assert acc["shift", "task mean"] == 1.0  # the task's own mean helps
    assert acc["shift", "null mean"] == 0.0  # the Null mean turns shifting into copying
    assert acc["null", "none"] == acc["null", "task mean"] == acc["null", "null mean"] == 1.0
    # the same mean added at layer 1, after the decoder has read the code, changes nothing
    late = lm.task_vector_intervention(model, df, layer=1, alpha=2.0, progress=False)
    assert (late.groupby("task").accuracy.nunique() == 1).all()
