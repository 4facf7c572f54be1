"""The one exception type for user errors.

A `GradgenError` carries a message that already says what went wrong and what
to do, plus (when known) the file and line it is about.  `str(err)` is the
one line the CLI prints; `--debug` shows the traceback as well.
"""

from __future__ import annotations


class GradgenError(Exception):
    """A user-facing error: bad model file, unsupported operation, bad option."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        """One line, whatever the message or file name holds (newlines and control characters become spaces)."""
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        return one_line(f"{where}{self.message}")


def one_line(text: str) -> str:
    """`text` on one line: runs of whitespace and control characters become one space."""
    cleaned = "".join(" " if (c.isspace() or not c.isprintable()) else c for c in text)
    return " ".join(cleaned.split())


class TraceError(GradgenError):
    """Raised while tracing a model function (unsupported op, control flow on data)."""
