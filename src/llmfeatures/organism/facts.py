"""The facts of the organism's world: who is who, which country has which capital, and the shift.

A :class:`Facts` object holds the countries and people of one world and derives the word-pair
relations from them.  :func:`make_facts` draws the people's occupations, instruments and sports
from the seed; :func:`shift_facts` builds the second, fine-tuning world in which a few capitals and
occupations are swapped.  Both are pure functions of their arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from llmfeatures.organism import vocab

# the relation names, in a fixed order; each maps to (input, output) word pairs
RELATION_NAMES: tuple[str, ...] = (
    "country_capital",
    "country_currency",
    "country_language",
    "person_occupation",
    "person_instrument",
    "person_sport",
    "singular_plural",
    "present_past",
    "male_female",
    "adjective_comparative",
)

# relations whose pairs are fixed word lists (not drawn from the seed)
_WORD_RELATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "singular_plural": vocab.SINGULAR_PLURAL,
    "present_past": vocab.PRESENT_PAST,
    "male_female": vocab.MALE_FEMALE,
    "adjective_comparative": vocab.ADJECTIVE_COMPARATIVE,
}


@dataclass(frozen=True)
class Country:
    """A country, its three facts and its region (an attribute its capital shares)."""

    name: str
    capital: str
    currency: str
    language: str
    region: str = ""


@dataclass(frozen=True)
class Person:
    """A person of the world: a first name, a gender ('m' or 'f'), three facts and a field.

    The occupation, instrument and sport all belong to the person's ``field``
    (:data:`llmfeatures.organism.vocab.FIELDS`), an attribute the person shares with them.
    """

    name: str
    gender: str
    occupation: str
    instrument: str
    sport: str
    field: str = ""

    @property
    def subject(self) -> str:
        """Subject pronoun: 'he' or 'she'."""
        return "he" if self.gender == "m" else "she"

    @property
    def object(self) -> str:
        """Object pronoun: 'him' or 'her'."""
        return "him" if self.gender == "m" else "her"

    @property
    def possessive(self) -> str:
        """Possessive determiner: 'his' or 'her'."""
        return "his" if self.gender == "m" else "her"


@dataclass(frozen=True)
class Change:
    """One fact that differs between the pre-training world and the shifted world."""

    relation: str
    subject: str
    before: str
    after: str


@dataclass(frozen=True)
class Facts:
    """Countries and people of one world; the relations follow from them."""

    countries: tuple[Country, ...]
    people: tuple[Person, ...]

    def relations(self) -> dict[str, list[tuple[str, str]]]:
        """All relations as ``{name: [(input, output), ...]}`` in :data:`RELATION_NAMES` order."""
        rel: dict[str, list[tuple[str, str]]] = {
            "country_capital": [(c.name, c.capital) for c in self.countries],
            "country_currency": [(c.name, c.currency) for c in self.countries],
            "country_language": [(c.name, c.language) for c in self.countries],
            "person_occupation": [(p.name, p.occupation) for p in self.people],
            "person_instrument": [(p.name, p.instrument) for p in self.people],
            "person_sport": [(p.name, p.sport) for p in self.people],
        }
        for name, pairs in _WORD_RELATIONS.items():
            rel[name] = list(pairs)
        return {name: rel[name] for name in RELATION_NAMES}

    def attributes(self) -> dict[str, list[str]]:
        """The shared attribute of every relation pair, aligned with :meth:`relations`.

        Country relations: the country's region (its capital, and its language, are described
        with the same word); person relations: the person's field (shared by the occupation,
        instrument and sport); word relations: the semantic class of the pair
        (:data:`llmfeatures.organism.vocab.WORD_CLASS`).
        """
        out: dict[str, list[str]] = {}
        for name, pairs in self.relations().items():
            if name.startswith("country_"):
                region = {c.name: c.region for c in self.countries}
                out[name] = [region[x] for x, _ in pairs]
            elif name.startswith("person_"):
                field = {p.name: p.field for p in self.people}
                out[name] = [field[x] for x, _ in pairs]
            else:
                out[name] = [vocab.WORD_CLASS[name][x] for x, _ in pairs]
        return out

    def anchors(self) -> list[str]:
        """The words that own an emblem: every country, every person, and the first word of every
        fixed word pair, in that order (the same in every world: it does not depend on a seed)."""
        words = [c.name for c in self.countries] + [p.name for p in self.people]
        rel = self.relations()
        words += [x for name in _WORD_RELATIONS for x, _ in rel[name]]
        return list(dict.fromkeys(words))

    def signs(self) -> dict[str, dict[str, str]]:
        """``{kind: {word: value}}`` for every sign kind of
        :data:`llmfeatures.organism.vocab.SIGNS` (emblem, colour, material).

        Each anchor (:meth:`anchors`) has a sign of every kind: an emblem of its own, and one of
        twelve colours and materials.  Each output word that belongs to one anchor alone in its
        relation (Paris to France, French to France, a violin played by one person only) shares
        all of its anchor's signs; outputs of several anchors (the euro, Spanish) have none.
        The anchors' signs come from a fixed seeded order of their names, the same in the shifted
        world, so a swapped capital takes the signs of its new country.
        """
        anchors = sorted(self.anchors())
        if len(anchors) > len(vocab.EMBLEMS):
            raise ValueError(f"{len(anchors)} anchors but only {len(vocab.EMBLEMS)} emblems; add "
                             "words to vocab.EMBLEMS.")
        owner = dict(zip(anchors, anchors, strict=True))
        for pairs in self.relations().values():
            n_out: dict[str, int] = {}
            for _, y in pairs:
                n_out[y] = n_out.get(y, 0) + 1
            for x, y in pairs:
                if n_out[y] == 1 and x in owner:
                    owner.setdefault(y, owner[x])
        out: dict[str, dict[str, str]] = {}
        for kind, (_, values) in vocab.SIGNS.items():
            rng = random.Random(f"llmfeatures-signs-{kind}")
            if len(values) >= len(anchors):
                chosen = rng.sample(values, len(anchors))
            else:  # a dozen values, each shared by about as many anchors
                chosen = [values[i % len(values)] for i in range(len(anchors))]
                rng.shuffle(chosen)
            own = dict(zip(anchors, chosen, strict=True))
            out[kind] = {w: own[a] for w, a in owner.items()}
        return out

    def emblems(self) -> dict[str, str]:
        """``{word: emblem}``: the ``"emblem"`` signs of :meth:`signs` (one per anchor, shared by
        the partners that belong to it alone)."""
        return self.signs()["emblem"]

    def person(self, name: str) -> Person:
        """The person called ``name``."""
        for p in self.people:
            if p.name == name:
                return p
        raise KeyError(f"no person named {name!r} in this world")


def _spread(rng: random.Random, values: tuple[str, ...], n: int) -> list[str]:
    """``n`` values drawn so that every value is used before any is repeated."""
    out: list[str] = []
    while len(out) < n:
        block = list(values)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def make_facts(seed: int) -> Facts:
    """The seeded pre-training world: real countries, fictional people with drawn attributes.

    Every person gets a field (the same number of people per field, genders mixed), then an
    occupation, instrument and sport of that field, spread so that each is used before any
    repeats.
    """
    rng = random.Random(f"llmfeatures-facts-{seed}")
    countries = tuple(Country(*row, region=vocab.COUNTRY_REGION[row[0]]) for row in vocab.COUNTRIES)
    # every other name of each list: 20 people, five per field, so that each occupation,
    # instrument and sport belongs to one person and the person relations are one-to-one like
    # the others (a pair can only share what is its own); the names still span 2 to 11 letters
    names = [(n, "m") for n in vocab.MALE_NAMES[::2]] + [(n, "f") for n in vocab.FEMALE_NAMES[::2]]
    rng.shuffle(names)
    fields = _spread(rng, vocab.FIELDS, len(names))
    by_field: dict[str, list[tuple[str, str]]] = {f: [] for f in vocab.FIELDS}
    for person, f in zip(names, fields, strict=True):
        by_field[f].append(person)
    people = []
    for f in vocab.FIELDS:
        group = by_field[f]
        occupations = _spread(rng, vocab.FIELD_OCCUPATIONS[f], len(group))
        instruments = _spread(rng, vocab.FIELD_INSTRUMENTS[f], len(group))
        sports = _spread(rng, vocab.FIELD_SPORTS[f], len(group))
        people += [Person(n, g, o, i, s, f) for (n, g), o, i, s
                   in zip(group, occupations, instruments, sports, strict=True)]
    order = {n: i for i, n in enumerate([*vocab.MALE_NAMES, *vocab.FEMALE_NAMES])}
    people.sort(key=lambda p: order[p.name])
    return Facts(countries=countries, people=tuple(people))


def shift_facts(
    facts: Facts, seed: int, n_capital_swaps: int, n_occupation_swaps: int
) -> tuple[Facts, list[Change]]:
    """The fine-tuning world: swap the capitals of ``n_capital_swaps`` pairs of countries and the
    occupations of ``n_occupation_swaps`` pairs of people (always people of the same field with
    different jobs, so that the shifted world's attributes stay consistent).

    Returns the shifted facts and the list of changed facts.
    """
    rng = random.Random(f"llmfeatures-shift-{seed}")
    changes: list[Change] = []
    countries = list(facts.countries)
    if 2 * n_capital_swaps > len(countries):
        raise ValueError(
            f"n_capital_swaps={n_capital_swaps} needs {2 * n_capital_swaps} countries but the world "
            f"has {len(countries)}; use at most {len(countries) // 2}."
        )
    idx = rng.sample(range(len(countries)), 2 * n_capital_swaps)
    for a, b in zip(idx[::2], idx[1::2]):
        ca, cb = countries[a], countries[b]
        countries[a] = replace(ca, capital=cb.capital)
        countries[b] = replace(cb, capital=ca.capital)
        changes.append(Change("country_capital", ca.name, ca.capital, cb.capital))
        changes.append(Change("country_capital", cb.name, cb.capital, ca.capital))
    people = list(facts.people)
    if 2 * n_occupation_swaps > len(people):
        raise ValueError(
            f"n_occupation_swaps={n_occupation_swaps} needs {2 * n_occupation_swaps} people but "
            f"the world has {len(people)}; use at most {len(people) // 2}."
        )
    order = list(range(len(people)))
    rng.shuffle(order)
    used: set[int] = set()
    swaps = 0
    for a in order:
        if swaps == n_occupation_swaps:
            break
        if a in used:
            continue
        for b in order:
            if (b != a and b not in used and people[b].occupation != people[a].occupation
                    and people[b].field == people[a].field):
                pa, pb = people[a], people[b]
                people[a] = replace(pa, occupation=pb.occupation)
                people[b] = replace(pb, occupation=pa.occupation)
                changes.append(Change("person_occupation", pa.name, pa.occupation, pb.occupation))
                changes.append(Change("person_occupation", pb.name, pb.occupation, pa.occupation))
                used.update((a, b))
                swaps += 1
                break
    return Facts(countries=tuple(countries), people=tuple(people)), changes
