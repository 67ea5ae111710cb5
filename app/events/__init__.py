"""Events: what happened, for the shop's other systems (docs/events.md).

In: a rule's `outbox.record(conn, type, data)` inside its own transaction. Out: the pull feed
(`outbox.feed`, GET /events), push subscriptions (subscriptions) and the worker that delivers to
them (delivery) and a subscription's test ping (ping), signed as the payment webhook is
(app/signing.py), only to addresses url_safety allows; what clients send and see (schemas); the
delivery metrics (metrics). Nothing here imports a rule module: the rules import `outbox`.
"""
