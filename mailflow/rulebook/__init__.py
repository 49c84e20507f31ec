"""The rules files: `rules/*.toml` read into values, for coordinators to edit.

One reader for all of them: `read_table` reads a file and checks its sections and keys
against what its loader knows, so that every mistake is a RulesError in the same words,
naming the file, the section and the key (`wrong`). `Shelf` keeps what was read, and reads
a file again only when it changes: coordinators edit the rules while the program runs,
and a STOP or a bounce no longer reads the disk.

Nothing here touches the store, and nothing imports `read`, `model` or any layer above:
they build on this one.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mailflow.errors import RulesError

Value = TypeVar("Value")


def read_file(path: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The TOML of `path`; {} if it is missing and may be; RulesError if it can't be read."""
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError as error:
        if missing_ok:
            return {}
        raise RulesError(f"{path}: cannot be read ({error.strerror or error})") from error
    except OSError as error:
        raise RulesError(f"{path}: cannot be read ({error.strerror or error})") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RulesError(f"{path}: not valid TOML: {error}") from error


def read_table(
    path: Path,
    sections: Mapping[str, Collection[str] | None],
    *,
    keys_on_top: Collection[str] = (),
    missing_ok: bool = False,
) -> dict[str, Any]:
    """The file read, each section checked against `sections`: section -> the keys it may
    have, or None where the loader checks the section itself (keys that are names people
    choose: choices, regions). `keys_on_top` may stand above every section."""
    data = read_file(path, missing_ok=missing_ok)
    for section, table in data.items():
        if section in keys_on_top:
            continue
        if section not in sections:
            known = ", ".join(f"[{name}]" for name in sections)
            also = "".join(f" and the key {key}" for key in keys_on_top)
            raise RulesError(f"{path}: unknown section [{section}]; the sections are {known}{also}")
        keys = sections[section]
        if keys is None:
            continue
        if not isinstance(table, dict):
            raise RulesError(f"{path}: [{section}] must be a section of keys, not {table!r}")
        check_keys(path, section, table, keys)
    return data


def check_keys(path: Path, section: str, table: Mapping[str, object], keys: Collection[str]):
    """RulesError for the first key of `table` that is not one of `keys`."""
    for key in table:
        if key not in keys:
            raise RulesError(f"{path}: [{section}] has no key {key!r}; it has {', '.join(keys)}")


def wrong(path: Path, section: str, key: str, problem: str) -> RulesError:
    """The one way a value is said to be wrong: `file: [section] key must be ...`."""
    return RulesError(f"{path}: [{section}] {key} {problem}")


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    # The change time and the inode too: an editor that saves by renaming a new file over
    # the old one may keep its size and, within the clock's tick, its mtime.
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


class Shelf:
    """What the loaders made of a rules folder, kept until a file changes.

    `get(file, loader)` gives `loader(folder)`, made again only when `file`'s modification
    time, size or inode differ from the last time (a missing file counts as one state).
    A loader that raises keeps nothing: the file is read again at the next use. Safe to
    share between threads: the values are frozen, and one thread reads a file at a time.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._kept: dict[str, tuple[object, object]] = {}
        self._lock = threading.Lock()

    def get(self, file: str, loader: Callable[[Path], Value]) -> Value:
        with self._lock:
            stamp = _stamp(self.folder / file)
            kept = self._kept.get(file)
            if kept is not None and kept[0] == stamp:
                return kept[1]  # type: ignore[return-value]
            value = loader(self.folder)
            self._kept[file] = (stamp, value)
            return value
