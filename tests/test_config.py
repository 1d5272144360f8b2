"""Config: parsed once, strictly; errors name the key and the fix."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.configs import MINIMAL
from tollway.config import ConfigError, load_settings, parse_settings


def test_minimal_config_from_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text(MINIMAL.format(db=tmp_path / "t.db"))
    settings = load_settings(path, env={"BENCH_KEY": "sk-123"})
    provider = settings.providers[0]
    assert provider.api_key is not None and provider.api_key.get_secret_value() == "sk-123"
    assert "sk-123" not in repr(settings)
    pricing = settings.models[0].endpoints[0].pricing
    assert pricing.prompt == Decimal("1.0") and pricing.completion == Decimal("2.0")


def test_unset_provider_key_leaves_the_provider_inactive_naming_the_variable(tmp_path: Path) -> None:
    # Commands that call no provider (keys, reports) must work without its secret.
    path = tmp_path / "tollway.yaml"
    path.write_text(MINIMAL.format(db=tmp_path / "t.db"))
    provider = load_settings(path, env={}).providers[0]
    assert provider.api_key is None and provider.api_key_env == "BENCH_KEY" and not provider.active


def test_missing_env_var_elsewhere_names_it() -> None:
    with pytest.raises(ConfigError, match=r"database: environment variable DB_URL is not set"):
        parse_settings({"database": "${DB_URL}"}, env={})


def test_env_default_syntax() -> None:
    s = parse_settings({"database": "${DB:-sqlite:///x.db}"}, env={})
    assert s.database == "sqlite:///x.db"


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"databse": "sqlite:///x.db"}, "databse: unknown key"),
    ({"providers": [{"name": "a", "kind": "grpc", "base_url": "http://x"}]}, "providers.0.kind"),
    ({"providers": [{"name": "a", "base_url": "ftp://x"}]}, "must start with http"),
    ({"providers": [{"kind": "openai", "base_url": "http://x"}]}, "providers.0.name: required key is missing"),
    ({"models": [{"id": "no-slash"}]}, "author/slug"),
    ({"models": [{"id": "a/b", "endpoints": [{"provider": "p", "model": "m",
                                               "pricing": {"prompt": -1}}]}]}, "prices must be >= 0"),
    ({"database": "mysql://x"}, "must be sqlite:///"),
    ({"providers": [{"name": "a", "base_url": "http://x"}, {"name": "a", "base_url": "http://y"}]},
     "duplicate name"),
])
def test_invalid_config_names_key_and_fix(raw: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, env={})
    assert fragment in str(info.value)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.database == "sqlite:///./tollway.db"
    assert settings.providers == ()
    (tmp_path / "tollway.yaml").write_text("database: sqlite:///./other.db\n")
    assert load_settings(None).database == "sqlite:///./other.db"


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
