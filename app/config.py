"""Every setting the service reads, from the environment or a `.env` file."""

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite:///./data/orders.db"


# The service's configuration; each field is documented in .env.example and README.md.
class Settings(BaseSettings):
    # Errors never echo the input: it may be a key, a secret or a password-bearing URL.
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore",
                                      hide_input_in_errors=True)

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_SQLITE_URL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # SQLite: how long a writer waits for the write lock before giving up.
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # PostgreSQL: connections each worker keeps, and how many more it may open under load.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)

    # API keys, comma-separated (several at once while rotating). Empty: the API is open.
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    # Request bodies larger than this many bytes are refused (413) before they are read.
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    # Multiprocess metrics directory; prometheus-client reads it from the real environment at
    # import, so it must be exported (./run.sh does, and cleans it at start), not only in .env.
    prometheus_multiproc_dir: str | None = None

    @field_validator("database_url")
    @classmethod
    def use_psycopg_driver(cls, url: str) -> str:
        """Render and Heroku hand out `postgres://` URLs; SQLAlchemy needs the driver named."""
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def upper_case_level(cls, level: str) -> str:
        return level.upper() if isinstance(level, str) else level

    @field_validator("api_keys", mode="before")
    @classmethod
    def split_api_keys(cls, keys: Any) -> Any:
        if isinstance(keys, str):
            return [key.strip() for key in keys.split(",") if key.strip()]
        return keys

    @field_validator("api_keys")
    @classmethod
    def long_keys_in_production(
        cls, keys: list[SecretStr], info: ValidationInfo
    ) -> list[SecretStr]:
        if info.data.get("app_env") == "production" and any(
            len(key.get_secret_value()) < 16 for key in keys
        ):
            raise ValueError("every API key needs at least 16 characters in production")
        return keys

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
