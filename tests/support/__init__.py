"""The shared harness of the tests and of bench/: what both import, and nothing else does.

databases (the engines every test runs on, fresh databases, migrations), factories (products
and orders made through the rules, database peeks), live_server (a real uvicorn in a
subprocess), serving (the in-process app as a context manager), webhooks (signed payment
events), event_receiver (a local push-subscription endpoint), ledger (the stock-ledger audit
a test ends with), load (concurrent calls, crash-mid-load and event-load helpers). bench/
imports the tests' code from here only, never from a test module.
"""
