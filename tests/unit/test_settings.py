"""The operator's settings are declared once (the fields of ``Settings``): the environment
reader, the docs' table and the chart's env block must follow those fields."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from siprtmp_operator.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = REPO / "helm" / "templates" / "deployment.yaml"


def chart_variables() -> set[str]:
    return set(re.findall(r"- name: (SIPRTMP_\w+)", DEPLOYMENT.read_text()))


def test_the_chart_sets_only_settings_that_exist_and_every_one_it_documents() -> None:
    known = {env_name(f): f for f in fields(Settings)}
    set_by_chart = chart_variables()
    assert set_by_chart - known.keys() == set(), "the chart sets variables no setting reads"
    documented = {name for name, f in known.items() if f.metadata["chart"]}
    assert documented - set_by_chart == set(), "settings name a chart value the chart never sets"
    assert set_by_chart - documented == set(), "the chart sets settings that name no chart value"


def test_every_variable_is_read_with_its_type_and_a_bad_one_is_named() -> None:
    settings = Settings.from_env(
        {
            "SIPRTMP_WORKERS": " 4 ",
            "SIPRTMP_RETRY_BACKOFF_SECONDS": "2.5",
            "SIPRTMP_API_ENABLED": "yes",
            "SIPRTMP_API_TOKEN": "t" * 16,
            "SIPRTMP_BRIDGE_EXTRA_ARGS": "--sip-log-level  3",
            "SIPRTMP_WATCH_NAMESPACES": "a, b,,",
            "SIPRTMP_BRIDGE_CA_BUNDLE_KEY": "",  # empty: the default
        }
    )
    assert settings.workers == 4
    assert settings.retry_backoff_seconds == 2.5
    assert settings.api_enabled is True
    assert settings.bridge_extra_args == ("--sip-log-level", "3")
    assert settings.watch_namespaces == ("a", "b")
    assert settings.bridge_ca_bundle_key == "ca.crt"
    assert "t" * 16 not in repr(settings)  # logs may print the settings, never the token
    for variable, value, words in (
        ("SIPRTMP_API_ENABLED", "maybe", "a boolean"),
        ("SIPRTMP_WORKERS", "4.5", "an integer"),
        ("SIPRTMP_POLL_INTERVAL_SECONDS", "soon", "a number"),
        ("SIPRTMP_STATUS_SCHEME", "ftp", "one of"),
        ("SIPRTMP_EXTRA_POD_LABELS", "team", "key=value"),
    ):
        with pytest.raises(ValueError, match=f"{variable} .*{words}"):
            Settings.from_env({variable: value})
