"""Progress of long stages: a labelled tqdm bar on a terminal, a log line elsewhere.

In a log (a Prefect run, a file, CI) a bar is noise; instead a line says how far the step
is, how fast it goes and when it will end, every ~10 s or 5 % (as img2dataset does):

    images: 12,288/98,004 (12.5%), 41.0 img/s, ETA 34m52s

On a terminal (``bars=True``, what the CLI asks for when stderr is a tty) it is a tqdm bar
with the same label; ``pipeline.cli`` routes log records through tqdm so none overwrites a
bar.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

log = logging.getLogger("pipeline.progress")


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _rate(rate: float, unit: str) -> str:
    if unit == "B":
        for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if rate >= scale:
                return f"{rate / scale:.1f} {name}/s"
    return f"{rate:.1f} {unit}/s"


class Progress:
    """``update(n)`` as work is done; ``close()`` (or leaving the ``with``) at the end."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        bars: bool = False,
        every_s: float = 10.0,
        every_frac: float = 0.05,
        logger: logging.Logger | None = None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self.every_s, self.every_frac = every_s, every_frac
        self.log = logger or log
        self.t0 = self.last_t = time.monotonic()
        self.last_done = 0
        self.bar = None
        if bars:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        since = now - self.last_t
        step = (self.total or 0) * self.every_frac
        # Every 10 s, or every 5 % but not more than one line in 2 s (short steps stay quiet).
        if since >= self.every_s or (step and self.done - self.last_done >= step and since >= 2):
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.done / max(now - self.t0, 1e-9)
        text = f"{self.desc}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.done / self.total:.1f}%)"
        text += f", {_rate(rate, self.unit)}"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        self.log.info(text)
        self.last_t, self.last_done = now, self.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.done and self.last_done != self.done and time.monotonic() - self.t0 >= 1.0:
            self._line(time.monotonic())  # a closing line for steps long enough to matter

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", bars: bool = False) -> Progress:
    return Progress(total, desc, unit, bars)
