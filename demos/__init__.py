"""Demos: `make run`'s server set-up (`server`) and `make demo`'s experiment scenarios
(`experiments`). They use the public client as any user would, live outside the wheel and find
`examples/` beside them in a clone."""
