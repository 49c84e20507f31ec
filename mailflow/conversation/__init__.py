"""ACT: ordinary mail, routed and answered.

`turn` is what every handler is given; `router` decides which handler answers; the
handlers live in `participant/` and `coordinator/`, and register themselves where they
are written (`commands.command`, `turn.continues`). This package's own import loads
nothing, so that a handler can import `turn` without the router.
"""
