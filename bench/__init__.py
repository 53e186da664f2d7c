"""Benchmarks of tracejudge, run with `make bench` (see bench/README.md); never part of the test suite.

`forwarding` runs everything; `load` (client), `noop_server` (reference and downstream) run as child processes;
`payloads` builds the requests, `scenarios` measures one, `counters` and `procs` read what is measured, `report`
prints and stores it.
"""
