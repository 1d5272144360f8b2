"""Bad configs stop `tollway serve` at start with one clear message naming the key, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tollway.cli import main


@pytest.mark.parametrize(("content", "words"), [
    (b"database: sqlite:///x.db\nadmin_key: caf\xe9\n", "not UTF-8"),
    (b"redis: notaurl\n", "redis"),
    (b"timeouts: {connect: -1}\n", "timeouts.connect"),
    (b"timeouts: {total: 0}\n", "timeouts.total"),
    (b"timeouts: {first_byte: -5, idle: -5}\n", "timeouts.first_byte"),
    (b"server: {key_cache_stale_s: -1}\n", "server.key_cache_stale_s"),
])
def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path: Path, content: bytes, words: str) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_bytes(content)
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--port", "1"])
    assert result.exit_code == 1, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_a_redis_url_is_accepted(tmp_path: Path) -> None:
    from tollway.config import load_settings

    config = tmp_path / "tollway.yaml"
    config.write_text("redis: redis://127.0.0.1:6379/0\n")
    assert load_settings(config).redis == "redis://127.0.0.1:6379/0"
