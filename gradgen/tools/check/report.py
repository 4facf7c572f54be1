"""What `gradgen check` found: comparison rows, tolerances, kinks and the printed table.

Contract.  A `Row` is one comparison (compiled vs engine, vs torch, vs
finite differences) over all points: it keeps its worst absolute and
relative error and where it occurred.  Two numbers agree when
`|a - b| <= atol + rtol * max(|a|, |b|)` (the same NaN or infinity on both
sides agrees), plus a slack for a finite difference's error estimate.
Defaults (`Tolerances`): `RTOL`/`ATOL` for the engine and torch, the looser
`FD_RTOL`/`FD_ATOL` for finite differences.

Kinks (`add_fd`).  Where a finite difference disagrees and its one-sided
differences disagree with each other beyond their error estimates, the step
straddles a point where `f` has no derivative (relu at 0).  The compiled
derivative then passes if it matches either one-sided difference; if both
one-sided differences are clean (the kink is at the point itself), f has no
derivative there to compare with and the output is not compared; otherwise
it is compared with the clean side.  Each case gets a note naming point and
output.

A `FunctionReport` holds one function's rows, points and notes; it fails
when a row fails or when no point could be checked.  `format_report` prints
it as a table, `summary` gives the last lines (one per failed comparison,
then the verdict).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from gradgen.tools.check.oracles import Slope, real, torch_grad

RTOL, ATOL = 1e-9, 1e-12  # compiled vs engine, compiled vs torch
FD_RTOL, FD_ATOL = 1e-5, 1e-7  # compiled vs central finite differences
CLEAN = 1e-3  # a one-sided difference is clean when its estimate is under CLEAN * the kink's jump


@dataclass
class Row:
    """One comparison over all points: its worst errors and where they occurred."""

    comparison: str
    rtol: float
    atol: float
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: tuple[float, str, int] | None = None  # (err / tolerance, output, point index)
    failed: bool = False
    compared: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    slack: str = ""  # what else the tolerance allows, for the table

    def error(self, a, b, slack: float = 0.0) -> tuple[float, float, float]:
        """(absolute error, relative error, error / tolerance) of `a` against `b`."""
        ra, rb = real(a), real(b)
        if ra is None or rb is None:  # a complex result: equal or infinitely wrong
            ra, rb = (0.0, 0.0) if a == b else (math.inf, 0.0)
        scale = max(abs(ra), abs(rb))
        if ra == rb or (math.isnan(ra) and math.isnan(rb)):
            err = rel = 0.0
        else:
            err = abs(ra - rb)
            err = math.inf if math.isnan(err) else err
            rel = err / scale if 0 < scale < math.inf else math.inf
        tolerance = self.atol + self.rtol * scale + slack if math.isfinite(scale) else self.atol
        tolerance = tolerance if math.isfinite(tolerance) else self.atol  # no estimate: strict
        ratio = err / tolerance if tolerance > 0 else (math.inf if err else 0.0)
        return err, rel, ratio

    def agrees(self, a, b, slack: float = 0.0) -> bool:
        return self.error(a, b, slack)[2] <= 1.0

    def add(self, a, b, output: str, point: int, slack: float = 0.0) -> None:
        """Compare `a` (compiled) with `b` (the reference, good to about `slack`) for `output` at `point`."""
        self.compared += 1
        err, rel, ratio = self.error(a, b, slack)
        self.max_abs = max(self.max_abs, err)
        self.max_rel = max(self.max_rel, rel)
        if self.worst is None or ratio > self.worst[0]:
            self.worst = (ratio, output, point)
        if ratio > 1.0:
            self.failed = True

    def fail(self, output: str, point: int, note: str | None = None) -> None:
        """The compiled side raised: a failure with no number to show."""
        self.failed = True
        self.max_abs = self.max_rel = math.inf
        if self.worst is None or self.worst[0] != math.inf:
            self.worst = (math.inf, output, point)
        if note is not None:
            self.notes.append(note)

    @property
    def status(self) -> str:
        if self.skipped is not None or (self.compared == 0 and not self.failed):
            return "SKIP"
        return "FAIL" if self.failed else "PASS"


def _g(x: float) -> str:
    return f"{x:.6g}"


def add_fd(row: Row, a, d: Slope, output: str, point: int) -> None:
    """Compare a compiled derivative `a` with the finite differences `d`, minding kinks.

    Where the central difference disagrees and the one-sided ones disagree
    with each other beyond their estimates, the step straddles a kink.  A
    one-sided difference whose stencil holds no kink is "clean" (its estimate
    is under `CLEAN` times the jump between the two, or within the
    tolerance: a kink at distance d inside the step h makes it about
    2 * jump * d / h, curvature about f'' * h); the compiled derivative
    passes if it matches a clean one.  If both are clean, the kink is at the
    point and f has no derivative there: nothing to compare (the engine and
    torch rows still judge the engine's convention, relu'(0) = 0).  If one
    is, f is differentiable at the point and that side's slope is its
    derivative: compared with it.
    """
    if row.agrees(a, d.central, d.error) or real(a) is None:
        row.add(a, d.central, output, point, slack=d.error)
        return
    if row.agrees(d.left, d.right, d.left_error + d.right_error):  # no kink: a wrong derivative
        row.add(a, d.central, output, point, slack=d.error)
        return
    kink = f"p{point}: {output} at a kink (one-sided slopes {_g(d.left)} and {_g(d.right)})"
    jump = abs(d.left - d.right)
    sides = [(d.left, d.left_error), (d.right, d.right_error)]
    clean = [(b, e) for b, e in sides if e <= max(CLEAN * jump, row.atol + row.rtol * abs(b))]
    for b, e in clean:
        if row.agrees(a, b, e):
            row.add(a, b, output, point, slack=e)
            row.notes.append(f"{kink}: compared with the one-sided difference it matches")
            return
    if len(clean) == 2:
        row.notes.append(
            f"{kink}: f has no derivative there and the compiled {_g(real(a))} matches neither slope "
            "(the engine takes relu'(0) = 0): not compared with finite differences"
        )
        return
    b, e = clean[0] if clean else (d.central, d.error)
    row.add(a, b, output, point, slack=e)
    row.notes.append(f"{kink}: compared with the one-sided difference {_g(b)} on the side without the kink")


@dataclass
class FunctionReport:
    name: str
    signature: str
    points: list[tuple]
    labels: list[str]  # where each point came from: "--at", "example", "random"
    rows: list[Row]
    notes: list[str]
    point_text: list[str]  # how to see each point again: an `--at` or a data set's seed
    skip: str | None = None  # why the function was not checked at all (not a failure)
    unit: str = "point"  # or "data set"
    verdicts: list[str] = field(default_factory=list)  # a learner's engine: one line per wrong op (opgrade)

    @property
    def failed(self) -> bool:
        bad = not self.points or bool(self.verdicts) or any(r.status == "FAIL" for r in self.rows)
        return self.skip is None and bad


@dataclass
class Tolerances:
    rtol: float = RTOL
    atol: float = ATOL
    fd_rtol: float = FD_RTOL
    fd_atol: float = FD_ATOL


def short_error(e: BaseException) -> str:
    """An exception in one line of at most about 100 characters, for a note."""
    text = " ".join(str(e).split())
    if len(text) > 100:
        text = text[:97] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# -- the table ----------------------------------------------------------------------


def _num(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def format_report(r: FunctionReport) -> str:
    """The table for one function: a row per comparison, then the points the rows name."""
    n = len(r.points)
    head = f"{r.signature}: {n} {r.unit}{'s' * (n != 1)}"
    kinds = [k for k in ("--at", "example", "random") if k in r.labels]
    if kinds:
        head += " (" + ", ".join(f"{r.labels.count(k)} {k}" for k in kinds) + ")"
    if r.skip is not None:
        return f"{r.signature}: skipped: {r.skip}"
    lines = [head]
    if not r.points:
        lines.append(f"  FAIL: nothing checked: no usable {r.unit}; give one with --at")
        lines += [f"  note: {n}" for n in r.notes]
        return "\n".join(lines)
    table = [("comparison", "max abs err", "max rel err", "worst at", "result", "tolerance")]
    shown: list[int] = []
    for row in r.rows:
        if row.status == "SKIP":
            table.append((row.comparison, "-", "-", "-", "SKIP", ""))
            continue
        at = "-"
        if row.worst is not None and row.worst[0] > 0:
            _, output, p = row.worst
            at = f"{output} at p{p}"
            shown.append(p)
        tolerance = f"rtol {row.rtol:g} atol {row.atol:g}{row.slack}"
        table.append((row.comparison, _num(row.max_abs), _num(row.max_rel), at, row.status, tolerance))
    widths = [max(len(t[c]) for t in table) for c in range(6)]
    for t in table:
        cells = [t[0].ljust(widths[0]), t[1].rjust(widths[1]), t[2].rjust(widths[2])]
        cells += [t[3].ljust(widths[3]), t[4].ljust(widths[4]), t[5]]
        lines.append(("  " + "  ".join(cells)).rstrip())
    shown += [int(m[1]) for m in (re.match(r"p(\d+): ", n) for n in r.notes) if m]  # points the notes name
    for p in sorted(set(shown)):
        lines.append(f"  p{p} ({r.labels[p]}): {r.point_text[p]}")
    lines += [f"  note: {n}" for n in r.notes]
    lines += [f"  FAIL: {v}" for v in r.verdicts]
    return "\n".join(lines)


def summary(reports: list[FunctionReport]) -> str:
    """The last lines: one per failed comparison, then the verdict."""
    lines = []
    for r in reports:
        if r.failed and not r.points:
            lines.append(f"FAIL {r.name}: no {r.unit} to check at")
        lines += [f"FAIL {r.name}: {v}" for v in r.verdicts]
        for row in r.rows:
            if row.status == "FAIL":
                _, output, p = row.worst
                lines.append(
                    f"FAIL {r.name}: {row.comparison}: {output} at p{p} is off by {_num(row.max_abs)} "
                    f"(rtol {row.rtol:g}, atol {row.atol:g}{row.slack})"
                )
    bad = [r.name for r in reports if r.failed]
    n = sum(r.skip is None for r in reports)
    if bad:
        lines.append(f"check FAILED for {', '.join(bad)} ({len(bad)} of {n} function{'s' * (n != 1)})")
    else:
        lines.append(f"check passed: {n} function{'s' * (n != 1)}")
    return "\n".join(lines)


def add_torch(row: Row, fn, xs, value, mine, p: int, grad=torch_grad) -> None:
    """Compare `value` and the gradient elements `mine` ((output, number) pairs) at point `p`
    with PyTorch float64 on `fn` (`grad`: the torch oracle); the first function PyTorch cannot
    run skips the row."""
    if row.skipped is not None:
        return
    try:
        t_value, t_grads = grad(fn, xs)
    except Exception as e:
        row.skipped = f"PyTorch cannot run {fn.__name__} on tensors ({short_error(e)}): skipped"
        return
    for (out, a), b in zip([("value", value)] + mine, (t_value, *t_grads)):
        row.add(a, b, out, p)
