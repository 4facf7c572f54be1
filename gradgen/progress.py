"""A progress line on stderr for long compiles.

    with progress.reporting("moons.py", sys.stderr):   # the CLI, around one model's build
        ...
        progress.phase("tracing", "loss", nodes=...)    # the pipeline, as each phase starts

Nothing is drawn for the first `DELAY` seconds (2), so quick compiles print
nothing; then a daemon thread redraws one line every `INTERVAL` seconds (0.25),
in place (`\\r`), e.g. `gradgen: moons.py: tracing loss, 123,456 nodes, 3.2 s`,
and the line is cleared when the build ends (or fails, before its error is
printed).  Nothing at all when the stream is not a terminal, or when the CLI
runs with `--quiet`.  Without an active reporter (`gradgen.compile_function`
in a notebook, the tests) `phase` only reads one global.

While tracing, the node count is read live from the trace in progress
(`gradgen.frontend.tracer._ACTIVE[-1].b.nodes`, a list whose `len` is safe to read
from another thread); in later phases it is the size of the graph the phase
started on.
"""

from __future__ import annotations

import shutil
import threading
import time

DELAY = 2.0  # seconds of silence before the first line
INTERVAL = 0.25  # seconds between redraws

_current: Reporter | None = None


def tracing_nodes() -> int | None:
    """The number of nodes of the trace in progress (None when none runs)."""
    from gradgen.frontend import tracer

    try:
        return len(tracer._ACTIVE[-1].b.nodes)
    except (IndexError, AttributeError):
        return None


class Reporter:
    """The progress line of one build: `phase` sets what it says, `tick` redraws it once due."""

    def __init__(self, label: str, stream, clock=time.monotonic, delay: float | None = None, width: int | None = None):
        self.label = label
        self.stream = stream
        self.clock = clock
        self.delay = DELAY if delay is None else delay
        self.width = width
        self.start = clock()
        self.what = "starting"
        self.nodes = None  # int, a callable returning one (or None), or None
        self.drawn = 0  # length of the line on screen (0: nothing drawn)
        self.lock = threading.RLock()  # the drawing thread and the pipeline both draw

    def phase(self, what: str, nodes=None) -> None:
        """A new phase: redrawn at once when the line is already showing."""
        with self.lock:
            self.what, self.nodes = what, nodes
            self.tick()

    def line(self) -> str:
        what, nodes = self.what, self.nodes
        if callable(nodes):
            nodes = nodes()
        text = f"gradgen: {self.label}: {what}"
        if nodes is not None:
            text += f", {nodes:,} nodes"
        return text + f", {self.clock() - self.start:.1f} s"

    def tick(self) -> None:
        """Draw the line (over the previous one) if the build has run for `delay` seconds."""
        with self.lock:
            if self.clock() - self.start < self.delay:
                return
            width = self.width or shutil.get_terminal_size((80, 24)).columns
            text = self.line()[: max(width - 1, 10)]  # never wrap: \r only returns within one line
            padded = text.ljust(self.drawn)  # spaces over the rest of a longer previous line
            self._write("\r" + padded)
            self.drawn = len(padded)

    def close(self) -> None:
        """Clear the line, if one was drawn."""
        with self.lock:
            if self.drawn:
                self._write("\r" + " " * self.drawn + "\r")
                self.drawn = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail the compile
            pass


def phase(what: str, nodes=None) -> None:
    """Tell the active reporter (if any) that a phase starts: `what` ("tracing loss"), its node count."""
    r = _current
    if r is not None:
        r.phase(what, nodes)


class reporting:
    """Context manager: a reporter drawing on `stream` from a daemon thread, if `enabled` and a terminal."""

    def __init__(self, label: str, stream, enabled: bool = True, interval: float | None = None, **kw):
        isatty = getattr(stream, "isatty", None)
        on = enabled and isatty is not None and _safe(isatty)
        self.reporter = Reporter(label, stream, **kw) if on else None
        self.interval = INTERVAL if interval is None else interval
        self._stop = threading.Event()
        self._thread = None
        self._previous = None

    def __enter__(self) -> Reporter | None:
        global _current
        self._previous = _current
        if self.reporter is not None:
            _current = self.reporter
            self._thread = threading.Thread(target=self._run, name="gradgen-progress", daemon=True)
            self._thread.start()
        return self.reporter

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.reporter.tick()

    def __exit__(self, *exc) -> None:
        global _current
        if self.reporter is not None:
            self._stop.set()
            self._thread.join()
            self.reporter.close()
        _current = self._previous


def _safe(isatty) -> bool:
    try:
        return bool(isatty())
    except (OSError, ValueError):
        return False
