"""``tollway keys create|update --policy-*``: validated, stored, and enforced by the router."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tollway.cli import main
from tollway.ledger.db import create_db_engine
from tollway.ledger.keys import find_key


def stored_policy(db: str, name: str) -> dict[str, object]:
    engine = create_db_engine(db)
    with engine.connect() as conn:
        info = find_key(conn, name)
    engine.dispose()
    assert info is not None
    return info.policy


def test_policy_options_create_update_and_validate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = tmp_path / "tollway.yaml"
    config.write_text(f"database: {db}\ncatalog: false\n")
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "create", "--config", str(config), "--name", "acme",
                                  "--policy-allowed-hosting-countries", "de,FR",
                                  "--policy-denied-origin-countries", "CN",
                                  "--policy-no-data-retention", "--policy-max-prompt-price", "2.5"])
    assert result.exit_code == 0, result.output
    assert stored_policy(db, "acme") == {"allowed_hosting_countries": ["DE", "FR"],
                                         "denied_origin_countries": ["CN"], "no_data_retention": True,
                                         "max_price": {"prompt": "2.5"}}
    result = runner.invoke(main, ["keys", "update", "acme", "--config", str(config),
                                  "--policy-allowed-hosting-countries", "none",
                                  "--policy-max-completion-price", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["policy"] == {"denied_origin_countries": ["CN"],
                                                   "no_data_retention": True,
                                                   "max_price": {"prompt": "2.5", "completion": "8"}}
    result = runner.invoke(main, ["keys", "update", "acme", "--config", str(config),
                                  "--policy-denied-hosting-countries", "Germany"])
    assert result.exit_code != 0 and "not an ISO 3166" in result.output
    assert stored_policy(db, "acme")["denied_origin_countries"] == ["CN"]
