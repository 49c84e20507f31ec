"""CHANGE, and tell: changes to the store that people are told about (Mailman's `app/`):
leaving, pausing, erasure, bounces, alerts to coordinators, the roster's import.

Below the conversations and the schedule, above `model` (rows) and `send` (mail).
"""
