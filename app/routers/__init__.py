"""HTTP in, calls to the rules, HTTP out: one module per resource."""
