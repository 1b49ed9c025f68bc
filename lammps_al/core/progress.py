"""A small progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total = max(int(total), 0)
        self.label = label
        self.count = 0
        self.enabled = enabled and self.total > 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last_decile = -1
        self._draw()

    def update(self, n: int = 1) -> None:
        self.count = min(self.total, self.count + n)
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        frac = self.count / self.total if self.total else 1.0
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.count * (self.total - self.count) if self.count else 0.0
        text = f"{self.label}: {self.count}/{self.total} [{elapsed:6.1f} s, eta {eta:6.1f} s]"
        if self.tty:
            width = 24
            filled = int(round(width * frac))
            self.stream.write(f"\r\033[K{self.label}: [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.count}/{self.total} {elapsed:5.1f} s")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False
