"""Silences and maintenance windows: what holds an alert's notifications back for a while, and the gate that does."""
