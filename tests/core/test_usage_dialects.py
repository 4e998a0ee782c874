"""Each provider's usage shape becomes the same Usage, and cache tokens are priced apart."""

from __future__ import annotations

from routstr.core.pricing import ModelPrice
from routstr.core.usage import Usage
from routstr.dialects.anthropic import to_usage as anthropic
from routstr.dialects.openai_chat import to_usage as openai_chat
from routstr.dialects.openai_responses import to_usage as openai_responses


def test_openai_chat_with_cache_and_reasoning():
    u = openai_chat(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 200},
        }
    )
    assert u == Usage(1200, 300, cached_tokens=1000, reasoning_tokens=200)
    assert openai_chat({"completion_tokens": 3}) is None
    assert openai_chat(None) is None


def test_openai_responses():
    u = openai_responses(
        {
            "input_tokens": 50,
            "output_tokens": 7,
            "input_tokens_details": {"cached_tokens": 20},
            "total_tokens": 57,
        }
    )
    assert u == Usage(50, 7, cached_tokens=20)


def test_anthropic_input_excludes_cache_tokens():
    u = anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 40,
        }
    )
    assert u == Usage(150, 5, cached_tokens=100, cache_write_tokens=40)


def test_cache_tokens_priced_apart_only_when_priced():
    u = Usage(1_000_000, 1_000_000, cached_tokens=400_000, cache_write_tokens=100_000)
    plain = ModelPrice(prompt_msat_per_mtok=1000, completion_msat_per_mtok=4000)
    assert plain.usage_cost_msat(u) == 1000 + 4000  # no cache prices: every prompt token at the prompt price
    cached = ModelPrice(1000, 4000, cached_prompt_msat_per_mtok=100, cache_write_msat_per_mtok=1250)
    # 500k plain at 1000 + 400k read at 100 + 100k written at 1250 + 1M output at 4000 (per million)
    assert cached.usage_cost_msat(u) == 500 + 40 + 125 + 4000
    # the reservation prices every prompt token at the dearest input price, so it always covers the cost
    assert cached.max_cost_msat(1_000_000, 1_000_000) == 1250 + 4000 >= cached.usage_cost_msat(u)
