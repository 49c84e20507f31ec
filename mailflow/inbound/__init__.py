"""Receivers: thin adapters that hand raw bytes to the pipeline and answer for it."""
