"""Progress of long runs: one self-updating line on a terminal, nothing otherwise.

Modules report steps through the "caffpy.progress" logger; cli.py shows them
with TerminalProgress when stderr is a terminal and drops them when it is not
(scripts and logs get only warnings, errors and the final summary).
"""

import logging
import time

log = logging.getLogger("caffpy.progress")

CLEAR_LINE = "\r\x1b[K"


def clear() -> None:
    """Remove the progress line, before the summary is printed."""
    for handler in log.handlers:
        if isinstance(handler, TerminalProgress):
            handler.clear()


def step(phase: str, number: int, total: int, detail: str = "") -> None:
    log.info(detail, extra={"phase": phase, "number": number, "total": total})


def note(text: str) -> None:
    """A phase without steps (fetching, reading a list)."""
    log.info(text, extra={"phase": text, "number": 0, "total": 0})


class TerminalProgress(logging.Handler):
    """Rewrites one status line: phase, n of N, and the time left at the pace so far."""

    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream
        self.phase = None
        self.started = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        phase = getattr(record, "phase", "")
        number = getattr(record, "number", 0)
        total = getattr(record, "total", 0)
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.started = phase, now
        line = phase
        if total:
            line = "%s %d/%d" % (phase, number, total)
            if number > 1:
                left = (now - self.started) / (number - 1) * (total - number + 1)
                line += ", about %ds left" % max(0, round(left))
        detail = record.getMessage()
        if detail:
            line += ": " + detail
        self.stream.write(CLEAR_LINE + line[:150])
        self.stream.flush()

    def clear(self) -> None:
        if self.phase is not None:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.phase = None
