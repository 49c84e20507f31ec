"""READ: bytes and words into values. Parsing a message, trimming a reply to its new text,
classifying what must never be answered, and reading forms, answers, dates, places and
languages.

Everything here is pure: a function of its arguments, no store, no clock, no mail sent.
"""
