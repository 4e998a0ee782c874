"""LOG_FORMAT, LOG_CLIENT_IPS, METRICS_HOST and METRICS_PORT."""

from __future__ import annotations

import pytest

from routstr.config import ConfigError, load_settings

BASE = {"UPSTREAM_BASE_URL": "http://127.0.0.1:9/v1", "CASHU_MINTS": "http://127.0.0.1:9"}


def test_defaults_text_logs_no_ips_no_separate_metrics_address():
    s = load_settings(BASE, env_file=None)
    assert (s.log_format, s.log_client_ips, s.metrics_port, s.metrics_host) == (
        "text",
        False,
        None,
        "127.0.0.1",
    )


def test_json_logs_client_ips_and_a_metrics_address():
    s = load_settings(
        {
            **BASE,
            "LOG_FORMAT": "JSON",
            "LOG_CLIENT_IPS": "true",
            "METRICS_HOST": "10.0.0.5",
            "METRICS_PORT": "9464",
        },
        env_file=None,
    )
    assert (s.log_format, s.log_client_ips, s.metrics_host, s.metrics_port) == (
        "json",
        True,
        "10.0.0.5",
        9464,
    )


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_CLIENT_IPS": "maybe"}, "LOG_CLIENT_IPS"),
        ({"METRICS_HOST": "0.0.0.0"}, "METRICS_PORT is not"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT"),
        ({"METRICS_PORT": "70000"}, "at most 65535"),
        ({"METRICS_PORT": "nine"}, "whole number"),
    ],
)
def test_mistakes_say_what_to_fix(env: dict[str, str], fragment: str):
    with pytest.raises(ConfigError, match=fragment):
        load_settings({**BASE, **env}, env_file=None)
