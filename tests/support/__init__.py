"""Shared test helpers: real servers in subprocesses, real clients."""
