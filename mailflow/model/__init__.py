"""CHANGE: the store's rows. The only SQL on participants, partnerships, rounds,
coordinators and tokens; each table has one module that writes it.

Nothing here sends mail.
"""
