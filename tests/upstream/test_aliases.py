"""Wildcard aliases and output-limit fitting, the pure rules (node tests: tests/node/test_agents.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routstr.billing.fitting import fitted_output, least_output
from routstr.core.pricing import PriceBook
from routstr.storage.provider_store import ModelSettingRow
from routstr.upstream.aliases import Patterns, alias_problem, matches, split
from routstr.upstream.catalogue import Catalogue, UpstreamModel
from routstr.upstream.managed import Effective, effective
from routstr.upstream.spec import ProviderSpec


@pytest.mark.parametrize(
    ("pattern", "model", "hit"),
    [
        ("claude-*", "claude-opus-4-5-20251101", True),
        ("claude-*", "claude-", True),
        ("claude-*", "claud", False),
        ("claude-*", "Claude-opus", False),  # case-sensitive, as model ids are
        ("*-mini", "gpt-4o-mini", True),
        ("gpt-*-mini", "gpt-4o-mini", True),
        ("gpt-*-mini", "gpt-4o-mini-2", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXcYYb", False),
        ("*", "", True),
        ("x?y", "xzy", False),  # only * is special
        ("x?y", "x?y", True),
        ("a*a*a*a*a*b", "a" * 255, False),  # no exponential backtracking
    ],
)
def test_matching_knows_only_the_star(pattern: str, model: str, hit: bool):
    assert matches(pattern, model) is hit


def test_the_most_specific_pattern_wins_whatever_the_order():
    table = {"*": "any", "claude-*": "haiku", "claude-opus-*": "opus", "claude-*-4-5*": "four-five"}
    for order in (table, dict(reversed(list(table.items())))):
        p = Patterns(order)
        assert p.match("claude-opus-4-5-20251101") == "opus"  # 12 literal characters beat 10
        assert p.match("claude-sonnet-4-5") == "four-five"
        assert p.match("claude-3") == "haiku"
        assert p.match("gpt-5") == "any"
    assert Patterns({"b*": "x", "a*": "y"}).match("ab") == "y" and Patterns().match("a") is None


def test_what_an_alias_may_say():
    assert alias_problem("claude-*", ("claude-haiku-4-5",)) is None
    assert alias_problem("fast", ("a", "b")) is None
    assert "exactly one" in str(alias_problem("claude-*", ("a", "b")))
    assert "without '*'" in str(alias_problem("claude-*", ("gpt-*",)))
    assert "without '*'" in str(alias_problem("fast", ("gpt-*",)))
    assert split({"fast": ("a", "b"), "c-*": ("t",)}) == ({"fast": ("a", "b")}, {"c-*": "t"})


def test_effective_keeps_patterns_apart_and_switches_them_off_with_their_target():
    file = ProviderSpec("upstream", "http://127.0.0.1:1/v1")
    files = {"fast": ("a",), "claude-*": ("haiku",), "gpt-*": ("a",)}

    def row(model: str, enabled: bool = True, aliases: tuple[str, ...] | None = None) -> ModelSettingRow:
        return ModelSettingRow(model, None, enabled, aliases, 0)

    e = effective([file], files, PriceBook(), [], [row("gemini-*", aliases=("b",))])
    assert e.aliases == {"fast": ("a",)}
    assert e.patterns == {"claude-*": "haiku", "gpt-*": "a", "gemini-*": "b"}
    off = effective(
        [file], files, PriceBook(), [], [row("haiku", enabled=False), row("gpt-*", enabled=False)]
    )
    assert off.patterns == {} and {"claude-*", "gpt-*", "haiku"} <= off.disabled


def _catalogue() -> Catalogue:
    c = Catalogue(PriceBook(), lambda: Decimal(100_000), 4096)
    offer = Effective(
        (), PriceBook(), {"claude-opus-4-1": ("haiku",)}, frozenset({"off"}), frozenset(),
        {"claude-*": "haiku", "o*": "haiku"},
    )  # fmt: skip
    models = {m: UpstreamModel(m, m, 0, None, "") for m in ("claude-sonnet-4-6", "haiku", "off")}
    c.runtime.replace(offer=offer, models=models)
    return c


def test_a_listed_id_is_never_rewritten_and_the_rest_go_to_the_pattern():
    c = _catalogue()
    assert c.resolve("claude-sonnet-4-6") == "claude-sonnet-4-6"  # served under its own id
    assert c.resolve("claude-opus-4-1") == "claude-opus-4-1"  # an exact alias
    assert c.resolve("claude-opus-4-5-20251101") == "haiku"
    assert c.resolve("off") == "haiku"  # switched off: unknown, so a pattern may take it
    assert c.resolve("gpt-5") == "gpt-5"  # nothing matches: a 404 later
    assert "claude-*" not in c.listed_ids() and "claude-opus-4-1" in c.listed_ids()


def test_fitting_lowers_only_down_to_the_floor():
    floor = 1024
    assert (
        least_output(None, floor) == 1
        and least_output(500, floor) == 500
        and least_output(32000, floor) == 1024
    )
    assert fitted_output(32000, 32000, 5000, floor) == 5000
    assert fitted_output(32000, 32000, 1024, floor) == 1024
    assert fitted_output(32000, 32000, 1023, floor) is None  # below the minimum: 402
    assert fitted_output(500, 500, 499, floor) is None  # a limit under the minimum is never lowered
    assert fitted_output(None, 4096, 7, floor) == 7  # no limit sent: down to one token, as before
    assert fitted_output(None, 4096, 0, floor) is None


def test_the_providers_file_reads_wildcard_aliases_and_refuses_bad_ones(tmp_path):
    from routstr.config import ConfigError, load_providers

    path = tmp_path / "providers.toml"
    head = '[[providers]]\nname = "p"\nbase_url = "http://127.0.0.1:1/v1"\nmodels = ["m"]\n\n[aliases]\n'
    path.write_text(head + '"claude-*" = "claude-haiku-4-5"\n"fast" = "m"\n"both" = ["m", "n"]\n')
    specs, aliases = load_providers(str(path), {})
    assert specs[0].models == frozenset({"m"})
    assert aliases == {"claude-*": ("claude-haiku-4-5",), "fast": ("m",), "both": ("m", "n")}
    for bad, words in (
        ('"claude-*" = ["a", "b"]', "exactly one"),
        ('"claude-*" = "gpt-*"', "without '*'"),
        ('"fast" = ["gpt-*"]', "without '*'"),
        ('"fast" = []', "one or more"),
        ('"fast" = [""]', "one or more"),
    ):
        path.write_text(head + bad + "\n")
        with pytest.raises(ConfigError, match=words.replace("*", r"\*")):
            load_providers(str(path), {})
