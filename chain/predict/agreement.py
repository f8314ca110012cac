"""Which answer the k executors agree on [PRED-AGREE.1-4].

The agreed answer needs a strict majority of the k *drawn* executors, not of those that
answered: no-shows count against agreement, so a colluding minority cannot win by making
honest executors miss a window, and with k odd two halves cannot tie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain.predict.answer import values_hash
from chain.types import Address, Hash32


def majority(k: int) -> int:
    """[PRED-AGREE.1] ``k // 2 + 1``: more than half of the drawn executors."""
    return k // 2 + 1


@dataclass(frozen=True, slots=True)
class Agreement:
    """The outcome: ``answer`` is the agreed output hash (None: no majority); ``agreeing``,
    ``disagreeing`` (opened, outside the agreed group; every opened answer when there is no
    majority) and ``no_shows`` (drawn, never opened) partition the drawn executors, each
    sorted by address."""

    answer: Hash32 | None
    agreeing: tuple[Address, ...]
    disagreeing: tuple[Address, ...]
    no_shows: tuple[Address, ...]


def _outcome(drawn: Sequence[Address], opened: Sequence[Address], group: set[Address],
             answer: Hash32 | None) -> Agreement:
    if answer is None:
        group = set()
    return Agreement(answer, tuple(sorted(group)),
                     tuple(sorted(a for a in opened if a not in group)),
                     tuple(sorted(a for a in drawn if a not in opened)))


def _check(drawn: Sequence[Address], opened: Mapping[Address, object]) -> None:
    if len(set(drawn)) != len(drawn):
        raise ValueError("drawn executors are distinct")
    stray = [a.hex() for a in opened if a not in drawn]
    if stray:
        raise ValueError(f"answers from executors not drawn: {stray}")


def exact_agreement(drawn: Sequence[Address], answers: Mapping[Address, Hash32]) -> Agreement:
    """[PRED-AGREE.2] ``labels`` and ``ciphertext`` modes: the output hash opened by at least
    ``majority(k)`` executors is the answer (at most one hash can be). Else no majority."""
    _check(drawn, answers)
    counts: dict[Hash32, int] = {}
    for h in answers.values():
        counts[h] = counts.get(h, 0) + 1
    need = majority(len(drawn))
    winner = next((h for h, n in counts.items() if n >= need), None)
    group = {a for a, h in answers.items() if h == winner}
    return _outcome(drawn, list(answers), group, winner)


def distance(a: Sequence[int], b: Sequence[int]) -> int:
    """[PRED-AGREE.3] The largest absolute difference of two equally long integer answers."""
    if len(a) != len(b):
        raise ValueError(f"answers of {len(a)} and {len(b)} values")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0)


Answer = Sequence[int] | bytes
"""A ``values`` answer: its integers, or the output hash of an invalid answer [PRED-IO.3]."""


def _close(x: Answer, y: Answer, tolerance: int) -> bool:
    if isinstance(x, bytes) or isinstance(y, bytes):
        return x == y
    return distance(x, y) <= tolerance


def _answer_hash(x: Answer) -> Hash32:
    return Hash32(x) if isinstance(x, bytes) else values_hash(x)


def tolerance_agreement(drawn: Sequence[Address], answers: Mapping[Address, Answer],
                        tolerance: int) -> Agreement:
    """[PRED-AGREE.3] ``values`` mode. Each opened answer x is a centre; its group is every
    opened answer y with ``distance(x, y) ≤ tolerance`` (exact integers; an invalid answer
    [PRED-IO.3] is close only to the same invalid answer). The largest group wins; ties go to
    the centre with the lower output hash [PRED-ANSWER.2], then the lower address. It is the
    answer (the centre's output hash) if it holds ``majority(k)`` executors; else no
    majority. Members of the group differ from the centre by at most ``tolerance``, from
    each other by at most twice that."""
    _check(drawn, answers)
    best: tuple[int, Hash32, Address] | None = None
    best_group: set[Address] = set()
    for centre, x in sorted(answers.items(), key=lambda item: item[0]):
        group = {a for a, y in answers.items() if _close(x, y, tolerance)}
        key = (-len(group), _answer_hash(x), centre)
        if best is None or key < best:
            best, best_group = key, group
    answer = best[1] if best is not None and len(best_group) >= majority(len(drawn)) else None
    return _outcome(drawn, list(answers), best_group, answer)
