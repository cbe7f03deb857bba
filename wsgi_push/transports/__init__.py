"""The three transports over one numbered queue: SSE, NDJSON streaming, long polling."""
