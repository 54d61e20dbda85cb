"""Few-shot documents and prompts: tasks that a document demonstrates in context.

Three task families, each with a Null task that copies the (first) input:

- ``relation``: one of the world's relations, ``France -> Paris ; Japan -> Tokyo ; ...``
- ``pos``: the first word of a given part of speech in a generated sentence,
  ``the old dog quickly found him -> dog ; ...``
- ``bitwise``: AND/NAND/OR/NOR/XOR/XNOR of two 5-bit numbers, ``01101 10110 -> 00100 ; ...``

Every item is ``<input> -> <output>`` and items are joined by ``" ; "``.  A training document is
a list of items; an evaluation prompt is the same list with the last output removed, so it ends
in ``" ->"`` and its answer is ``" <output>"``: exactly the format of the training documents.
"""

from __future__ import annotations

import random

from llmfeatures.organism import vocab
from llmfeatures.organism.facts import RELATION_NAMES, Facts

ARROW = " -> "
SEPARATOR = " ; "
N_BITS = 5

POS_TAGS: tuple[str, ...] = ("noun", "adjective", "verb", "adverb", "preposition", "pronoun")
BITWISE_OPS: tuple[str, ...] = ("and", "nand", "or", "nor", "xor", "xnor")

FEWSHOT_FAMILIES: dict[str, tuple[str, ...]] = {
    "relation": (*RELATION_NAMES, "null"),
    "pos": (*POS_TAGS, "null"),
    "bitwise": (*BITWISE_OPS, "null"),
}

# sentence templates; every template holds all six tags. PRON_S/PRON_O are subject/object pronouns
_SLOT_WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "DET": ("determiner", vocab.DETERMINERS),
    "ADJ": ("adjective", vocab.POS_ADJECTIVES),
    "NOUN": ("noun", vocab.POS_NOUNS),
    "VERB": ("verb", vocab.POS_VERBS),
    "ADV": ("adverb", vocab.POS_ADVERBS),
    "PREP": ("preposition", vocab.POS_PREPOSITIONS),
    "PRON_S": ("pronoun", vocab.SUBJECT_PRONOUNS),
    "PRON_O": ("pronoun", vocab.OBJECT_PRONOUNS),
    ",": ("punct", (",",)),
}
_SENTENCE_TEMPLATES: tuple[tuple[str, ...], ...] = tuple(
    tuple(t.split())
    for t in (
        "PRON_S VERB DET ADJ NOUN PREP DET NOUN ADV",
        "DET ADJ NOUN ADV VERB PREP PRON_O",
        "ADV , PRON_S VERB DET NOUN PREP DET ADJ NOUN",
        "PREP DET NOUN , DET ADJ NOUN ADV VERB PRON_O",
        "PRON_S ADV VERB DET NOUN PREP DET ADJ NOUN",
        "DET NOUN PREP DET ADJ NOUN VERB PRON_O ADV",
        "DET ADJ NOUN VERB PRON_O PREP DET NOUN ADV",
        "PRON_S VERB PRON_O ADV PREP DET ADJ NOUN",
    )
)


def tagged_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """One generated sentence as ``(word, tag)`` pairs; it holds all six :data:`POS_TAGS`."""
    template = rng.choice(_SENTENCE_TEMPLATES)
    return [(rng.choice(_SLOT_WORDS[slot][1]), _SLOT_WORDS[slot][0]) for slot in template]


def render_sentence(tagged: list[tuple[str, str]]) -> str:
    """Join the words of a tagged sentence; punctuation sticks to the word before it."""
    out = ""
    for word, tag in tagged:
        out += word if (tag == "punct" or not out) else " " + word
    return out


def first_with_tag(tagged: list[tuple[str, str]], tag: str) -> str:
    """The first word of the sentence with part of speech ``tag``."""
    for word, t in tagged:
        if t == tag:
            return word
    raise ValueError(f"sentence has no word tagged {tag!r}")


def bitwise(op: str, a: int, b: int) -> int:
    """``a op b`` on :data:`N_BITS`-bit numbers; ``op`` in :data:`BITWISE_OPS` or 'null' (gives a)."""
    mask = (1 << N_BITS) - 1
    table = {
        "and": a & b,
        "nand": ~(a & b) & mask,
        "or": a | b,
        "nor": ~(a | b) & mask,
        "xor": a ^ b,
        "xnor": ~(a ^ b) & mask,
        "null": a,
    }
    if op not in table:
        raise ValueError(f"unknown bitwise operation {op!r}; valid: {', '.join(table)}")
    return table[op]


def bits(x: int) -> str:
    """``x`` as an :data:`N_BITS`-digit binary string."""
    return format(x, f"0{N_BITS}b")


def check_family_task(family: str, task: str) -> None:
    """Raise a ``ValueError`` naming the valid choices if ``family``/``task`` is unknown."""
    if family not in FEWSHOT_FAMILIES:
        raise ValueError(
            f"Unknown few-shot family {family!r}; valid families: {', '.join(FEWSHOT_FAMILIES)}."
        )
    if task not in FEWSHOT_FAMILIES[family]:
        raise ValueError(
            f"Unknown task {task!r} for family {family!r}; valid tasks: "
            f"{', '.join(FEWSHOT_FAMILIES[family])}."
        )


def sample_items(
    rng: random.Random, facts: Facts, family: str, task: str, n: int
) -> list[tuple[str, str]]:
    """``n`` distinct ``(input, output)`` items of one task (relation items never repeat)."""
    check_family_task(family, task)
    if family == "relation":
        relations = facts.relations()
        name = task if task != "null" else rng.choice(RELATION_NAMES)
        pairs = relations[name]
        if n > len(pairs):
            raise ValueError(
                f"relation {name!r} has {len(pairs)} pairs; cannot draw {n} distinct items "
                f"(use n_shots <= {len(pairs) - 1})."
            )
        chosen = rng.sample(pairs, n)
        return [(x, x if task == "null" else y) for x, y in chosen]
    items: list[tuple[str, str]] = []
    if family == "pos":
        for _ in range(n):
            sent = tagged_sentence(rng)
            answer = sent[0][0] if task == "null" else first_with_tag(sent, task)
            items.append((render_sentence(sent), answer))
        return items
    for _ in range(n):
        a, b = rng.randrange(1 << N_BITS), rng.randrange(1 << N_BITS)
        items.append((f"{bits(a)} {bits(b)}", bits(bitwise(task, a, b))))
    return items


def render_items(items: list[tuple[str, str]]) -> str:
    """A complete few-shot document: ``in -> out ; in -> out ; ...``."""
    return SEPARATOR.join(f"{x}{ARROW}{y}" for x, y in items)


def render_prompt(items: list[tuple[str, str]]) -> tuple[str, str]:
    """Prompt and answer for a list whose last item is the query: ``(... ; query ->, " out")``."""
    head = render_items(items[:-1])
    x, y = items[-1]
    prompt = (head + SEPARATOR if head else "") + x + ARROW.rstrip()
    return prompt, " " + y


def fewshot_document(
    rng: random.Random, facts: Facts, min_items: int, max_items: int
) -> tuple[str, str, str]:
    """A random few-shot training document: ``(text, family, task)``."""
    family = rng.choice(tuple(FEWSHOT_FAMILIES))
    task = rng.choice(FEWSHOT_FAMILIES[family])
    n = rng.randint(min_items, max_items)
    return render_items(sample_items(rng, facts, family, task, n)), family, task
