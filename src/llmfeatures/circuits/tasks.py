"""Planted tasks with known answers, encoded for any ``HookedTransformer`` with a fast tokenizer.

A :class:`Task` is a list of prompts whose next token has a known right answer and known
competitors (the wrong pronoun, the other capitals, the other name).  Its *metric* on one prompt
is ``logit(answer) - mean(logit(competitors))`` at the last position, and the prompt is *right*
when the answer beats every competitor.  A task may also carry *corrupted* prompts of the same
token length (another subject, a name of the other gender) for activation patching.

Builders:

- :func:`fact_task` - ``"The capital of France is"`` -> ``" Paris"`` against the other capitals
  (the organism's world, or any list of pairs, e.g. for GPT-2 small);
- :func:`pronoun_task` - ``"... Nora ... Later that day,"`` -> ``" she"`` against ``" he"``;
- :func:`ioi_task` - IOI-style prompts for real models (``"When Mary and John went to the
  store, John gave a drink to"`` -> ``" Mary"`` against ``" John"``).

Every prompt is tokenized as ``<bos> + tokenizer(prompt)``, the way the organism was trained and
the way TransformerLens's ``to_tokens`` does it.  Prompts are run in batches of equal token length
(:func:`length_groups`), so that no padding is needed and position ``-1`` is always the last token.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from transformer_lens import HookedTransformer


@dataclass
class Task:
    """Prompts with a right next token and its competitors.

    ``others[i]`` are the competing answers of prompt ``i``; ``corrupt_prompts[i]`` (optional, may
    be ``None`` for a prompt without a partner) is prompt ``i`` with the subject changed, whose
    right answer is ``corrupt_answers[i]``.  ``meta`` holds one row of ground truth per prompt.
    Answers are scored by their first token.
    """

    name: str
    prompts: list[str]
    answers: list[str]
    others: list[tuple[str, ...]]
    corrupt_prompts: list[str | None] | None = None
    corrupt_answers: list[str | None] | None = None
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if n == 0:
            raise ValueError(f"task {self.name!r} has no prompts")
        if len(self.answers) != n or len(self.others) != n:
            raise ValueError(
                f"task {self.name!r}: {n} prompts but {len(self.answers)} answers and "
                f"{len(self.others)} competitor lists; give one of each per prompt."
            )
        if any(len(o) == 0 for o in self.others):
            raise ValueError(f"task {self.name!r}: every prompt needs at least one competitor")
        if (self.corrupt_prompts is None) != (self.corrupt_answers is None):
            raise ValueError("give corrupt_prompts and corrupt_answers together (or neither)")
        if self.corrupt_prompts is not None and (
            len(self.corrupt_prompts) != n or len(self.corrupt_answers or []) != n
        ):
            raise ValueError(f"task {self.name!r}: one corrupted prompt (or None) per prompt")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def chance(self) -> float:
        """Accuracy of a uniform guess among the answer and its competitors (mean over prompts)."""
        return float(sum(1 / (1 + len(o)) for o in self.others) / len(self.others))


@dataclass
class EncodedTask:
    """A :class:`Task` in token ids for one model.

    ``tokens[i]`` starts with BOS; ``answer[i]`` is the first token of the answer; ``others`` is
    ``[n, k]`` padded with ``-1`` (``others_mask`` marks real entries); ``corrupt_tokens[i]`` has
    the length of ``tokens[i]`` (or is ``None``) and ``corrupt_answer[i]`` is ``-1`` without one.
    """

    task: Task
    tokens: list[list[int]]
    answer: torch.Tensor
    others: torch.Tensor
    others_mask: torch.Tensor
    corrupt_tokens: list[list[int] | None]
    corrupt_answer: torch.Tensor

    def __len__(self) -> int:
        return len(self.tokens)


def encode_prompts(model: HookedTransformer, prompts: Sequence[str]) -> list[list[int]]:
    """``<bos> + tokenizer(prompt)`` for each prompt (lists of token ids)."""
    tok = _tokenizer(model)
    ids = tok(list(prompts), add_special_tokens=False)["input_ids"]
    return [[tok.bos_token_id, *s] for s in ids]


def _tokenizer(model: HookedTransformer):
    tok = model.tokenizer
    if tok is None:
        raise ValueError("the model has no tokenizer; load it with load_model(...) or attach one")
    if tok.bos_token_id is None:
        raise ValueError(
            "the tokenizer has no BOS token; these tools prepend one to every prompt (set "
            "tokenizer.bos_token to the model's beginning-of-text token)"
        )
    return tok


def first_token(model: HookedTransformer, text: str) -> int:
    """Id of the first token of ``text`` (answers are scored by their first token)."""
    ids = _tokenizer(model)(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"the answer {text!r} has no tokens")
    return int(ids[0])


def encode_task(model: HookedTransformer, task: Task) -> EncodedTask:
    """Tokenize ``task`` for ``model``.  Competitors sharing the answer's first token are dropped
    (a prompt left with none raises); corrupted prompts must keep the clean prompt's length."""
    if not isinstance(task, Task):
        raise TypeError(f"expected a Task, got {type(task).__name__}")
    tokens = encode_prompts(model, task.prompts)
    if max(len(t) for t in tokens) > model.cfg.n_ctx:
        raise ValueError(
            f"task {task.name!r} has prompts longer than the model's context ({model.cfg.n_ctx})"
        )
    vocab_ids = {s: first_token(model, s) for s in {*task.answers, *(o for os in task.others
                                                                      for o in os)}}
    answer = torch.tensor([vocab_ids[a] for a in task.answers])
    rows = []
    for i, os in enumerate(task.others):
        ids = sorted({vocab_ids[o] for o in os} - {int(answer[i])})
        if not ids:
            raise ValueError(
                f"task {task.name!r}, prompt {i}: every competitor of {task.answers[i]!r} starts "
                "with the same token as the answer; give competitors that differ in their first "
                "token"
            )
        rows.append(ids)
    k = max(len(r) for r in rows)
    others = torch.full((len(rows), k), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        others[i, : len(r)] = torch.tensor(r)
    corrupt: list[list[int] | None] = [None] * len(tokens)
    corrupt_answer = torch.full((len(tokens),), -1, dtype=torch.long)
    if task.corrupt_prompts is not None:
        idx = [i for i, p in enumerate(task.corrupt_prompts) if p is not None]
        enc = encode_prompts(model, [task.corrupt_prompts[i] for i in idx]) if idx else []
        for i, c in zip(idx, enc, strict=True):
            if len(c) != len(tokens[i]):
                raise ValueError(
                    f"task {task.name!r}, prompt {i}: the corrupted prompt has {len(c)} tokens "
                    f"but the clean one {len(tokens[i])}; patching needs equal lengths"
                )
            corrupt[i] = c
            corrupt_answer[i] = first_token(model, task.corrupt_answers[i])  # type: ignore[index]
    return EncodedTask(task, tokens, answer, others, others >= 0, corrupt, corrupt_answer)


def length_groups(
    tokens: Sequence[Sequence[int]], batch_size: int = 64, indices: Sequence[int] | None = None
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Batches of prompts of equal length: ``(indices, tokens [batch, pos])``, no padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    by_len: dict[int, list[int]] = {}
    for i in range(len(tokens)) if indices is None else indices:
        by_len.setdefault(len(tokens[i]), []).append(i)
    for length in sorted(by_len):
        idx = by_len[length]
        for s in range(0, len(idx), batch_size):
            part = idx[s : s + batch_size]
            yield part, torch.tensor([list(tokens[i]) for i in part], dtype=torch.long)


def score_logits(enc: EncodedTask, logits: torch.Tensor, idx: Sequence[int] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric and correctness from last-position logits ``[n, d_vocab]`` of prompts ``idx``.

    Returns ``metric [n]`` (answer logit minus the mean competitor logit) and ``right [n]``
    (the answer beats every competitor).
    """
    idx = list(range(len(enc))) if idx is None else list(idx)
    logits = logits.float().cpu()
    ans = logits.gather(1, enc.answer[idx][:, None])[:, 0]
    oth, mask = enc.others[idx].clamp(min=0), enc.others_mask[idx]
    ol = logits.gather(1, oth)
    mean_other = (ol * mask).sum(1) / mask.sum(1)
    best_other = ol.masked_fill(~mask, float("-inf")).max(1).values
    return ans - mean_other, ans > best_other


@torch.no_grad()
def last_logits(model: HookedTransformer, enc: EncodedTask, fwd_hooks: Sequence = (),
                batch_size: int = 64) -> torch.Tensor:
    """Logits at the last position of every prompt, ``[n, d_vocab]`` (on the CPU)."""
    out = torch.empty(len(enc), model.cfg.d_vocab)
    for idx, toks in length_groups(enc.tokens, batch_size):
        logits = model.run_with_hooks(toks.to(model.cfg.device), fwd_hooks=list(fwd_hooks))
        out[idx] = logits[:, -1].float().cpu()
    return out


def evaluate_task(model: HookedTransformer, task: Task | EncodedTask) -> dict[str, float]:
    """``{"accuracy", "metric", "chance"}`` of the model on the task (means over prompts)."""
    enc = task if isinstance(task, EncodedTask) else encode_task(model, task)
    metric, right = score_logits(enc, last_logits(model, enc))
    return {"accuracy": float(right.float().mean()), "metric": float(metric.mean()),
            "chance": enc.task.chance}


# -------------------------------------------------------------------------------------------
# builders
# -------------------------------------------------------------------------------------------
def _pair_by_length(model: HookedTransformer | None, prompts: list[str],
                    seed: int) -> list[int | None]:
    """For each prompt, another prompt of the same token length (a random derangement within
    each length), or ``None`` when it is alone of its length.  Without a model, by word count."""
    if model is not None:
        lengths = [len(t) for t in encode_prompts(model, prompts)]
    else:
        lengths = [len(p.split()) for p in prompts]
    rng = random.Random(seed)
    partner: list[int | None] = [None] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        order = idx[:]
        rng.shuffle(order)
        for a, b in zip(order, order[1:] + order[:1], strict=True):
            partner[a] = b
    return partner


def fact_task(
    pairs: Sequence[tuple[str, str]],
    template: str = "The capital of {s} is",
    model: HookedTransformer | None = None,
    name: str = "facts",
    seed: int = 0,
) -> Task:
    """``template.format(s=subject)`` -> ``" " + object``, against the other objects.

    Each prompt's corrupted partner is the prompt of another subject with the same token length
    (``model`` gives the lengths; without it, word counts), whose answer is that subject's object.
    """
    if len(pairs) < 2:
        raise ValueError("a fact task needs at least two (subject, object) pairs")
    if "{s}" not in template:
        raise ValueError(f"the template {template!r} needs a '{{s}}' slot for the subject")
    objects = [" " + o for _, o in pairs]
    prompts = [template.format(s=s) for s, _ in pairs]
    partner = _pair_by_length(model, prompts, seed)
    unique = sorted(set(objects))
    return Task(
        name=name,
        prompts=prompts,
        answers=objects,
        others=[tuple(o for o in unique if o != a) for a in objects],
        corrupt_prompts=[None if j is None else prompts[j] for j in partner],
        corrupt_answers=[None if j is None else objects[j] for j in partner],
        meta=pd.DataFrame({"subject": [s for s, _ in pairs], "object": [o for _, o in pairs],
                           "partner": [None if j is None else pairs[j][0] for j in partner]}),
    )


def organism_fact_task(world, model: HookedTransformer | None = None,
                       relation: str = "country_capital", seed: int = 0) -> Task:
    """:func:`fact_task` on one relation of the organism's world, with its evaluation template."""
    facts = world.eval_facts()
    if relation not in set(facts["relation"]):
        raise ValueError(f"unknown relation {relation!r}; the world has {sorted(world.relations)}")
    sub = facts[facts["relation"] == relation]
    template = sub["prompt"].iloc[0].replace(sub["subject"].iloc[0], "{s}")
    pairs = list(zip(sub["subject"], sub["answer"].str.strip(), strict=True))
    return fact_task(pairs, template, model=model, name=relation, seed=seed)


def _swap_word(text: str, old: str, new: str) -> str:
    out, n = re.subn(rf"\b{re.escape(old)}\b", new, text)
    if n == 0:
        raise ValueError(f"{old!r} does not occur in {text!r}")
    return out


def pronoun_task(world, n_per_person: int = 5, seed: int = 0,
                 model: HookedTransformer | None = None) -> Task:
    """Pronoun agreement on the world's held-out pronoun prompts: ``" he"`` vs ``" she"``.

    The corrupted prompt swaps the name for a random name of the other gender that keeps the
    prompt's token length (``model`` gives lengths; without it any name of the other gender), so
    its right pronoun is the other one.  ``meta`` has columns name, gender, other_name.
    """
    df = world.eval_pronouns(n_per_person=n_per_person, seed=seed)
    people = world.people
    names = {g: sorted(people.loc[people["gender"] == g, "name"]) for g in ("m", "f")}
    rng = random.Random(f"pronoun-corrupt-{seed}")
    corrupt: list[str | None] = []
    other_names: list[str | None] = []
    for prompt, name, gender in zip(df["prompt"], df["name"], df["gender"], strict=True):
        pool = names["f" if gender == "m" else "m"][:]
        rng.shuffle(pool)
        candidates = [_swap_word(prompt, name, other) for other in pool]
        if model is not None:  # keep the token length: patching compares position by position
            n_clean = len(encode_prompts(model, [prompt])[0])
            keep = [len(t) == n_clean for t in encode_prompts(model, candidates)]
            pool = [o for o, k in zip(pool, keep, strict=True) if k]
            candidates = [c for c, k in zip(candidates, keep, strict=True) if k]
        corrupt.append(candidates[0] if candidates else None)
        other_names.append(pool[0] if pool else None)
    answers = df["answer"].tolist()
    flip = {" he": " she", " she": " he"}
    return Task(
        name="pronouns",
        prompts=df["prompt"].tolist(),
        answers=answers,
        others=[(flip[a],) for a in answers],
        corrupt_prompts=corrupt,
        corrupt_answers=[None if c is None else flip[a] for c, a in zip(corrupt, answers,
                                                                        strict=True)],
        meta=pd.DataFrame({"name": df["name"], "gender": df["gender"], "other_name": other_names}),
    )


IOI_TEMPLATES: tuple[str, ...] = (
    "When{A} and{B} went to the store,{S} gave a drink to",
    "When{A} and{B} went to the park,{S} gave a ball to",
    "After{A} and{B} went to the office,{S} handed a letter to",
    "Then,{A} and{B} had a long argument, and afterwards{S} said to",
)
IOI_NAMES: tuple[str, ...] = (
    " Mary", " John", " Tom", " James", " Dan", " Sid", " Martin", " Amy", " Lisa", " Kate",
    " Paul", " Anna", " Mark", " Sarah", " David", " Laura",
)


def ioi_task(n_prompts: int = 64, seed: int = 0, names: Sequence[str] = IOI_NAMES,
             templates: Sequence[str] = IOI_TEMPLATES) -> Task:
    """Indirect-object identification prompts: ``{A}`` and ``{B}`` are introduced, ``{S}`` is the
    repeated subject (names with their leading space).  Clean prompts have S = B, so the right
    answer is A and the competitor B; the corrupted prompt has S = A, so its answer is B.  Use names that are single tokens for the
    model (the defaults are for GPT-2)."""
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    if len(set(names)) < 2:
        raise ValueError("ioi_task needs at least two different names")
    rng = random.Random(f"ioi-{seed}")
    rows = []
    for i in range(n_prompts):
        t = templates[i % len(templates)]
        a, b = rng.sample(list(names), 2)
        rows.append((t.format(A=a, B=b, S=b), a, b, t.format(A=a, B=b, S=a)))
    return Task(
        name="ioi",
        prompts=[r[0] for r in rows],
        answers=[r[1] for r in rows],
        others=[(r[2],) for r in rows],
        corrupt_prompts=[r[3] for r in rows],
        corrupt_answers=[r[2] for r in rows],
        meta=pd.DataFrame({"io": [r[1].strip() for r in rows], "s": [r[2].strip() for r in rows]}),
    )


__all__ = [
    "IOI_NAMES",
    "IOI_TEMPLATES",
    "EncodedTask",
    "Task",
    "encode_prompts",
    "encode_task",
    "evaluate_task",
    "fact_task",
    "first_token",
    "ioi_task",
    "last_logits",
    "length_groups",
    "organism_fact_task",
    "pronoun_task",
    "score_logits",
]
