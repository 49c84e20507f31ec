"""RECEIVE: mail arrives (SMTP, IMAP, `ingest`, the one-click POST), is spooled and
stored, and the handling process hands it to the pipeline. Nothing here decides what to
answer.
"""
