"""pytest plugin (``-p tests.spill_everything``): every duplicate index made in the session holds at most 16
keys in memory and spills the rest to disk, so the dedup and lint tests it runs check the disk path give
their very results. The number of spills goes to the file named by ``$SPILL_COUNT_FILE`` at the end
(the test that runs this plugin checks there were some)."""

from __future__ import annotations

import os
from typing import Any

from audiodata.dedup import store

_init = store.FirstSeen.__init__
_spill = store.FirstSeen.spill
_spills = [0]


def _tiny(self: store.FirstSeen, memory: int = store.DEFAULT_MEMORY, folder: Any = None) -> None:
    _init(self, 0, folder)


def _counted(self: store.FirstSeen) -> None:
    _spills[0] += bool(self.mem)
    _spill(self)


store.FirstSeen.__init__ = _tiny  # type: ignore[method-assign]
store.FirstSeen.spill = _counted  # type: ignore[method-assign]


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get("SPILL_COUNT_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(_spills[0]))
