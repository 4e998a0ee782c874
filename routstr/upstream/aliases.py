"""Wildcard aliases: ``"claude-*" = "claude-haiku-4-5"`` sells every model id the pattern matches as
one model the operator picked (pure: no I/O).

An exact alias (``"fast" = ["llama-3.1-8b", "gpt-4o-mini"]``) is a public id of its own: listed in
``/v1/models`` and priced by its own id. A pattern stands for ids nobody can list (e.g. whatever default
model id a coding agent asks for), so it is not listed and the request is served, priced, billed and
recorded as its target. Only ``*`` is special (any run of characters, also none); a pattern has exactly
one target, which has no ``*``. A model id ``/v1/models`` lists is never rewritten; among the patterns
an id matches, the most specific wins: the most literal characters, then the fewest ``*``, then the
pattern's text (so the choice never depends on the order they were written in).
"""

from __future__ import annotations

from collections.abc import Mapping

WILDCARD = "*"


def is_pattern(model: str) -> bool:
    return WILDCARD in model


def alias_problem(public: str, targets: tuple[str, ...]) -> str | None:
    """What is wrong with an alias, in the operator's terms (None: nothing): targets are model ids
    (no ``*``), and a wildcard alias has exactly one."""
    if any(is_pattern(t) for t in targets):
        return f"the targets of the alias {public!r} must be model ids, without '*'"
    if is_pattern(public) and len(targets) != 1:
        return f"the wildcard alias {public!r} must name exactly one model (its requests are billed as it)"
    return None


def matches(pattern: str, model: str) -> bool:
    """``fnmatch`` with ``*`` only, case-sensitive; linear in practice, O(len × len) at worst (no regex,
    so a pattern can never backtrack exponentially)."""
    p = m = 0
    star, mark = -1, 0
    while m < len(model):
        if p < len(pattern) and pattern[p] == WILDCARD:
            star, mark = p, m
            p += 1
        elif p < len(pattern) and pattern[p] == model[m]:
            p += 1
            m += 1
        elif star >= 0:  # let the last * take one more character
            p = star + 1
            mark += 1
            m = mark
        else:
            return False
    return all(c == WILDCARD for c in pattern[p:])


def _specificity(pattern: str) -> tuple[int, int, str]:
    stars = pattern.count(WILDCARD)
    return (-(len(pattern) - stars), stars, pattern)


class Patterns:
    """The wildcard aliases in force, most specific first."""

    def __init__(self, table: Mapping[str, str] | None = None) -> None:
        self.table = dict(table or {})
        self._ordered = sorted(self.table, key=_specificity)

    def __bool__(self) -> bool:
        return bool(self.table)

    def match(self, model: str) -> str | None:
        """The target of the most specific pattern ``model`` matches, or None."""
        for pattern in self._ordered:
            if matches(pattern, model):
                return self.table[pattern]
        return None

    def pattern_for(self, model: str) -> str | None:
        """The pattern that decides ``model`` (for the operator's views)."""
        return next((p for p in self._ordered if matches(p, model)), None)


def split(aliases: Mapping[str, tuple[str, ...]]) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """(exact aliases, wildcard pattern -> target). A pattern with a mistake (stored by an older
    version, or several targets) keeps its first target: the API and the files refuse such entries."""
    exact: dict[str, tuple[str, ...]] = {}
    patterns: dict[str, str] = {}
    for public, targets in aliases.items():
        if not is_pattern(public):
            exact[public] = targets
        elif targets and not is_pattern(targets[0]):
            patterns[public] = targets[0]
    return exact, patterns
