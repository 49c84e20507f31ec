"""A participant's conversations: commands, the application form, check-in replies,
survey replies, and leaving."""

import importlib
import pkgutil

# Every module here is imported, as Mailman 3's `add_components` does: a handler is
# registered by being written in this folder, never by being listed somewhere else.
MODULES = tuple(
    importlib.import_module(f"{__name__}.{found.name}") for found in pkgutil.iter_modules(__path__)
)
