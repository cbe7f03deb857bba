"""Benchmarks of wsgi_push against Nchan and sse-starlette (never run by CI).

Run with ``python -m benchmarks`` (see docs/benchmarks.md).
"""
