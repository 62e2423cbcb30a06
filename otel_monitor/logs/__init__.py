"""Structured JSON logging: every stdlib record as one scrubbed JSON line carrying the trace ids of its span."""
