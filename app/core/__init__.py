"""What every layer uses: settings, the error shape and its list of codes, logs, metrics, the
API's value formats (money, timestamps, ids, text limits) and list cursors.

In: nothing from the rest of the service (core imports only the standard library, third-party
packages, and `app.signing` for the webhook settings). Out: `Settings` (config), `ApiError`
and the problem+json handlers (errors, problem_codes), one-line JSON logs (logs), Prometheus
metrics (metrics), `utcnow`/`to_cents`/`money_text`/`rfc3339` and the text patterns (formats),
opaque `after` cursors (cursors), OpenTelemetry traces when the OTEL_* variables ask (tracing).
"""
