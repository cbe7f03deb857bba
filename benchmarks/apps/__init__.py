"""The servers the benchmark measures: wsgi_push and the sse-starlette peer."""
