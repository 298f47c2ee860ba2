""""Is it me?": endpoints that should always answer. When every one fails, the fault is most likely
the orchestrator's own network, so its view is marked unreliable: results are recorded as such, no
state changes, no incidents, no actions, until any sentinel answers again."""

from __future__ import annotations

import logging
import threading

from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.checkers import get_checker

log = logging.getLogger(__name__)


class Sentinels:
    def __init__(self, urls: list[str], timeout_s: float = 2.0) -> None:
        self.specs = [CheckSpec(url=u, expect_status=["200-499"]) for u in urls]
        self.timeout_s = timeout_s
        self._reliable = True
        self._lock = threading.Lock()

    def reliable(self) -> bool:
        return self._reliable

    def probe(self) -> bool:
        """Check every sentinel once (periodic job); returns and stores the verdict."""
        if not self.specs:
            return True
        with self._lock:
            ok = any(get_checker("http").check(spec, timeout_s=self.timeout_s).ok for spec in self.specs)
            if ok != self._reliable:
                if ok:
                    log.warning("sentinels answer again: view reliable, judging components again")
                else:
                    log.error("every sentinel failed: own view unreliable, no state changes or actions")
            self._reliable = ok
            return ok
