"""The yardstick for `bench.smtp_load`: an aiosmtpd server that only writes each message to
disk (one file, fsynced, as durable as mailflow's commit) and answers 250.

    python -m bench.bare_smtp PORT FOLDER
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        path = self.folder / f"{next(self.numbers)}.eml"
        with open(path, "wb") as handle:
            handle.write(envelope.original_content or envelope.content)
            handle.flush()
            os.fsync(handle.fileno())
        return "250 OK"


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Store(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("listening", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
