"""Shared fixtures: the Phoenix backend is one session-wide server for every test that asks for it."""

pytest_plugins = ["tests.support.phoenix"]
