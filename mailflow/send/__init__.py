"""OUT: render a template, compose the message, sign it, queue it in the outbox in the
caller's transaction, and deliver it through the relay exactly once.

It never decides what to say: callers name the template and its context.
"""
