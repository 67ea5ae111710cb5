"""Every setting the service reads, from the environment or a `.env` file."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite:///./data/orders.db"


# The service's configuration; each field is documented in .env.example and README.md.
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_SQLITE_URL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # SQLite: how long a writer waits for the write lock before giving up.
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # Connections each worker keeps, and how many more it may open under load (PostgreSQL,
    # and SQLite files): also how many requests of a worker use the database at once.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)

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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
