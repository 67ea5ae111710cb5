"""Every setting the service reads, from the environment or a `.env` file."""

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import signing
from app.core import access, currencies

# A request header's name (RFC 9110 token characters).
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
DEFAULT_SQLITE_URL = "sqlite:///./data/orders.db"
# The longest payment window (PENDING_ORDER_TTL_SECONDS): a year.
MAX_PAYMENT_WINDOW = 366 * 24 * 3600
# Example values from docs and templates: refused as secrets when APP_ENV=production.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "your-secret-key-here",
        "your-secret",
        "your-webhook-secret",
        "webhook-secret",
        "replace-me",
        "todo",
        "xxx",
        "test",
        "password",
    }
)


# The service's configuration; each field is documented in .env.example and README.md.
class Settings(BaseSettings):
    # Errors never echo the input: it may be a key, a secret or a password-bearing URL.
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", hide_input_in_errors=True
    )

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_SQLITE_URL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # SQLite: how long a writer waits for its turn and the write lock before a 503.
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0, le=600_000)
    # PostgreSQL: connections each worker's pool may open (DB_POOL_SIZE + DB_MAX_OVERFLOW).
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    # SQLite: threads per worker for the statements that cost O(rows) (a list's count, the
    # name search), so they never run on the event loop (docs/data-layer.md).
    db_threads: int = Field(default=4, ge=1, le=256)
    # How long a request may wait for a database connection (PostgreSQL) before a 503; the
    # time budget of a SQLite scan.
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    # The payment window: a PENDING order not paid this many seconds after it was placed is
    # canceled by the service and its stock returned. Unset: PENDING orders never expire.
    # At most a year: a deadline must be a time the service can store and show.
    pending_order_ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_PAYMENT_WINDOW)
    # How often each worker looks for orders past their window (and other chores).
    housekeeping_interval_seconds: float = Field(default=30.0, ge=0.01, le=3600)

    # How long an Idempotency-Key on POST /orders is remembered.
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Shared secret(s) of the payment webhook, comma-separated for rotation; unset: 503.
    webhook_secret: SecretStr | None = None
    # The signing secret(s) of the Stripe dashboard's endpoint for POST /webhooks/stripe
    # (`whsec_...`, used as Stripe uses it: its UTF-8 bytes), comma-separated while rotating;
    # unset: that webhook answers 503.
    stripe_webhook_secret: SecretStr | None = None
    # How far (s) a webhook's signed timestamp may be from the server's clock, either way (both
    # webhooks).
    webhook_tolerance_seconds: int = Field(
        default=signing.DEFAULT_TOLERANCE_SECONDS, ge=1, le=24 * 3600
    )

    # The shop's currency: an ISO 4217 code of a currency with 2 decimal places (0- and
    # 3-decimal currencies such as JPY or KWD are refused at start). Every product and order
    # shows it; an order or payment naming another is 422 `currency_mismatch`.
    currency: str = currencies.DEFAULT

    # API keys, comma-separated (several at once while rotating). Each is `name:role:key` (a
    # named key with a role: admin, storefront, fulfillment, readonly) or a bare key (an admin
    # key named key<N>, N its position). Empty: the API is open.
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    # Request bodies larger than this many bytes are refused (413) before they are read.
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=1 << 30)
    # The limit of a catalog import's body instead (POST /products/import; at most 10,000
    # rows either way): 16 MiB holds 10,000 rows of some 1,600 bytes each.
    import_max_body_bytes: int = Field(default=16 * 1_048_576, ge=1, le=1 << 30)
    # Multiprocess metrics directory; prometheus-client reads it from the real environment at
    # import, so it must be exported (./run.sh does, and cleans it at start), not only in .env.
    prometheus_multiproc_dir: str | None = None

    # The request path (app/http/request_path.py). Origins allowed to call from a browser,
    # comma-separated, or `*`; empty: no CORS headers at all.
    cors_origins: Annotated[list[str], NoDecode] = []
    # Request headers a browser may send besides those the API always allows (Authorization,
    # X-API-Key, Content-Type, Idempotency-Key, If-Match, X-Request-ID), comma-separated:
    # `traceparent,sentry-trace`, say.
    cors_allow_headers: Annotated[list[str], NoDecode] = []
    # Requests a worker works on at once (unset: 64 on SQLite; on PostgreSQL the pool's
    # DB_POOL_SIZE + DB_MAX_OVERFLOW, so no admitted request waits for a connection); more
    # wait, at most MAX_QUEUED of them and QUEUE_TIMEOUT_SECONDS each, then get 503
    # `overloaded` before any work is done.
    max_in_flight: int | None = Field(default=None, ge=1, le=100_000)
    max_queued: int = Field(default=256, ge=0, le=100_000)
    queue_timeout_seconds: float = Field(default=2.0, gt=0, le=600)
    # A request body must arrive within this time (408 `request_timeout` otherwise).
    body_read_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    # Request headers over either limit are refused (431 `headers_too_large`).
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1 << 20)
    max_headers: int = Field(default=100, ge=10, le=10_000)
    # /readyz answers from a check of the database run in the background this often.
    readiness_interval_seconds: float = Field(default=2.0, ge=0.01, le=3600)
    # SQLite: /readyz turns 503 `insufficient_storage` when the database's disk has less free.
    min_free_disk_mib: int = Field(default=16, ge=0, le=1 << 30)
    # Outbound events (docs/events.md). Subscription URLs must resolve to public addresses
    # unless this is true (development, tests: a receiver on 127.0.0.1).
    event_allow_private_urls: bool = False
    # How long one delivery attempt may take, response included, before it counts as failed.
    event_delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Retry n waits this × 2^(n-1) seconds (with jitter, at most an hour).
    event_retry_base_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Attempts per delivery before it is marked failed.
    event_max_attempts: int = Field(default=12, ge=1, le=100)
    # Events (and their delivery log) older than this are purged.
    event_retention_days: int = Field(default=30, ge=1, le=3650)

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

    @field_validator("webhook_secret")
    @classmethod
    def usable_webhook_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        for secret in signing.parse_secrets(value.get_secret_value() if value else None):
            signing.secret_key(secret)  # raises ValueError for a malformed whsec_ secret
        return value

    @field_validator("currency")
    @classmethod
    def known_currency(cls, code: str) -> str:
        return currencies.checked(code)  # upper case, or ValueError saying why not

    @model_validator(mode="after")
    def a_connection_for_every_database_thread(self) -> "Settings":
        connections = self.db_pool_size + self.db_max_overflow
        if self.db_threads > connections:
            raise ValueError(
                f"DB_THREADS ({self.db_threads}) exceeds the connections the pool "
                f"may open (DB_POOL_SIZE + DB_MAX_OVERFLOW = {connections})"
            )
        return self

    @model_validator(mode="after")
    def no_placeholder_secret_in_production(self) -> "Settings":
        if self.app_env != "production":
            return self
        for name, secrets in (
            ("WEBHOOK_SECRET", self.webhook_secrets),
            ("STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secrets),
        ):
            if any(secret.lower() in PLACEHOLDER_SECRETS for secret in secrets):
                raise ValueError(f"{name} is a placeholder; set a real secret in production")
        return self

    @property
    def webhook_secrets(self) -> list[str]:
        value = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        return signing.parse_secrets(value)

    @property
    def stripe_webhook_secrets(self) -> list[str]:
        value = (
            self.stripe_webhook_secret.get_secret_value() if self.stripe_webhook_secret else None
        )
        return signing.parse_secrets(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def split_origins(cls, origins: Any) -> Any:
        if isinstance(origins, str):
            return [origin.strip().rstrip("/") for origin in origins.split(",") if origin.strip()]
        return origins

    @field_validator("cors_allow_headers", mode="before")
    @classmethod
    def split_headers(cls, headers: Any) -> Any:
        if isinstance(headers, str):
            return [header.strip() for header in headers.split(",") if header.strip()]
        return headers

    @field_validator("cors_allow_headers")
    @classmethod
    def header_names(cls, headers: list[str]) -> list[str]:
        for header in headers:
            if not _HEADER_NAME.fullmatch(header):
                raise ValueError(f"{header!r} is not a header name")
        return headers

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
        named = access.named_keys(key.get_secret_value() for key in keys)  # or ValueError
        if info.data.get("app_env") == "production" and any(len(key.secret) < 16 for key in named):
            raise ValueError("every API key needs at least 16 characters in production")
        return keys

    @property
    def named_api_keys(self) -> list[access.NamedKey]:
        """API_KEYS' entries as named keys with their roles (app/core/access.py)."""
        return access.named_keys(key.get_secret_value() for key in self.api_keys)

    @property
    def payment_window(self) -> timedelta | None:
        ttl = self.pending_order_ttl_seconds
        return None if ttl is None else timedelta(seconds=ttl)

    @property
    def in_flight_limit(self) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        return 64 if self.is_sqlite else self.db_pool_size + self.db_max_overflow

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
