"""What the node sells once the database's model settings are laid over the files' (pure rules)."""

from __future__ import annotations

from decimal import Decimal

from routstr.core.pricing import PriceBook, parse_spec
from routstr.storage.provider_store import ModelSettingRow
from routstr.upstream.managed import effective
from routstr.upstream.spec import ProviderSpec

FILE = ProviderSpec("upstream", "http://127.0.0.1:1/v1")
BOOK = PriceBook(
    models={
        "gpt": parse_spec(
            {"prompt_usd_per_mtok": 1, "completion_usd_per_mtok": 2, "max_output_tokens": 9}, "gpt"
        )
    }
)


def setting(model: str, price: dict | None = None, enabled: bool = True, aliases: tuple | None = None):
    return ModelSettingRow(model, price, enabled, aliases, 0)


def test_a_stored_price_replaces_the_files_entry_as_a_whole():
    e = effective([FILE], {}, BOOK, [], [setting("gpt", {"prompt_sats_per_mtok": 7})])
    spec = e.prices.spec_for("gpt")
    assert (spec.currency, spec.prompt, spec.completion, spec.max_output_tokens) == ("sat", 7, 0, None)
    assert e.overridden == {"gpt"} and e.prices.default == BOOK.default
    assert (
        effective([FILE], {}, BOOK, [], [setting("gpt", enabled=False)]).prices.spec_for("gpt")
        == BOOK.models["gpt"]
    )


def test_aliases_from_the_database_and_what_switching_off_does_to_them():
    files = {"fast": ("a", "b"), "slow": ("c",)}
    e = effective([FILE], files, BOOK, [], [setting("mine", aliases=("a",)), setting("slow", aliases=())])
    assert e.aliases == {"fast": ("a", "b"), "mine": ("a",)}  # [] removed the file's "slow"
    off = effective([FILE], files, BOOK, [], [setting("a", enabled=False), setting("mine", aliases=("a",))])
    assert off.aliases == {
        "fast": ("b",),
        "slow": ("c",),
    }  # a switched-off target is not sold through an alias
    assert off.disabled == {"a", "mine"}  # an alias left with no target is switched off too


def test_stored_providers_come_after_the_files_and_a_bad_stored_price_is_ignored():
    db = ProviderSpec("extra", "http://127.0.0.1:2/v1", fee=Decimal("0.1"))
    e = effective(
        [FILE], {}, BOOK, [db], [setting("x", {"prompt_sats_per_mtok": 1, "prompt_usd_per_mtok": 1})]
    )
    assert e.specs == (FILE, db) and "x" not in e.prices.models and not e.overridden
