"""Questions to the user, on the terminal even when stdin carries a party list."""

import logging
import sys

from caffpy.errors import UsageError

log = logging.getLogger(__name__)


class Prompter:
    """Asks yes/no questions; in batch mode never asks and takes the default."""

    def __init__(self, batch: bool = False):
        self.batch = batch
        self._tty_in = None
        self._tty_out = None

    def _streams(self):
        if sys.stdin.isatty():
            return sys.stdin, sys.stdout
        if self._tty_in is None:
            try:
                self._tty_in = open("/dev/tty", "r")
                self._tty_out = open("/dev/tty", "w")
            except OSError:
                raise UsageError("caffpy needs to ask a question but there is no terminal; "
                                 "use --batch to take the defaults without asking")
        return self._tty_in, self._tty_out

    def ask(self, question: str, default: bool) -> bool:
        if self.batch:
            return default
        stream_in, stream_out = self._streams()
        choices = "[Y/n]" if default else "[y/N]"
        while True:
            stream_out.write("%s %s " % (question, choices))
            stream_out.flush()
            answer = stream_in.readline()
            if not answer:           # end of input: the default
                stream_out.write("\n")
                return default
            answer = answer.strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            stream_out.write("Please answer y or n.\n")

    def ask_line(self, question: str, default: str) -> str:
        """A one-line answer, stripped; an empty line or end of input gives the default."""
        if self.batch:
            return default
        stream_in, stream_out = self._streams()
        stream_out.write("%s [%s] " % (question, default))
        stream_out.flush()
        answer = stream_in.readline()
        if not answer:
            stream_out.write("\n")
        return answer.strip() or default

    def decide(self, mode: str, question: str) -> bool:
        """Apply a yes / ask-yes / ask-no / no setting to a question."""
        if mode == "yes":
            return True
        if mode == "no":
            return False
        return self.ask(question, default=(mode != "ask-no"))

    def show(self, text: str) -> None:
        """Print information the user needs for a decision (stdout or the terminal)."""
        if self.batch or sys.stdin.isatty():
            print(text)
        else:
            _, stream_out = self._streams()
            stream_out.write(text + "\n")
            stream_out.flush()

    def close(self) -> None:
        for stream in (self._tty_in, self._tty_out):
            if stream is not None:
                stream.close()
