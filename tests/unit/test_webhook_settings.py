"""The webhook's settings: secrets parsed for rotation, placeholders refused in production."""

import pytest
from pydantic import ValidationError

from app.core.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_webhook_secret_holds_several_comma_separated_secrets():
    assert settings(webhook_secret="old, new").webhook_secrets == ["old", "new"]
    assert settings().webhook_secrets == []


def test_webhook_secret_is_read_from_the_environment_and_hidden_in_repr(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", "from-the-env")
    monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "60")
    configured = settings()
    assert configured.webhook_secrets == ["from-the-env"]
    assert configured.webhook_tolerance_seconds == 60
    assert "from-the-env" not in repr(configured)


def test_empty_webhook_secret_means_not_configured(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", "")
    assert settings().webhook_secrets == []


@pytest.mark.parametrize(
    "placeholder", ["change-me", "CHANGEME", "your-secret-key-here", "secret", "real-one,change-me"]
)
def test_placeholder_secret_is_refused_in_production(placeholder: str):
    with pytest.raises(ValidationError, match="placeholder"):
        settings(app_env="production", webhook_secret=placeholder)


def test_placeholder_secret_is_allowed_outside_production():
    assert settings(app_env="development", webhook_secret="change-me").webhook_secrets == [
        "change-me"
    ]


def test_real_secret_is_accepted_in_production():
    assert settings(app_env="production", webhook_secret="x7Gk2-long-random").webhook_secrets


def test_malformed_whsec_secret_is_refused_at_start_up():
    with pytest.raises(ValidationError, match="base64"):
        settings(webhook_secret="whsec_not*base64")


@pytest.mark.parametrize("tolerance", [0, -1])
def test_tolerance_must_be_positive(tolerance: int):
    with pytest.raises(ValidationError):
        settings(webhook_tolerance_seconds=tolerance)


def test_the_service_refuses_to_start_with_a_placeholder_secret_in_production(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.live_server import ROOT

    env = {
        **os.environ,
        "APP_ENV": "production",
        "WEBHOOK_SECRET": "change-me",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WEBHOOK_SECRET is a placeholder" in result.stderr
