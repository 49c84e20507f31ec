"""ACT ON ITS OWN: what the program sends unasked. Check-ins, topics, reminders and
nudges when due, the end of a term (survey, certificate) and invitations to the next round.

It never imports `conversation`: the two are siblings, and a reply to what is sent here is
answered there, tied to it by the token's purpose (`model.tokens`).
"""
