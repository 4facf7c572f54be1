"""The `gradgen` command line.

    gradgen compile MODEL.py [MODEL.py ...] [-o DIR] [--check] [--report] [--no-reroll] [--backend {numpy,torch,numba}] [--quiet]
    gradgen ir MODEL.py [--function NAME] [--grad] [--optimized]
    gradgen check MODEL.py [--module FILE] [--function NAME] [--at NAME=X,...] [--points N] [--seed S]
    gradgen graph MODEL.py -o FILE.svg|.png|.pdf|.dot [--function NAME] [--at NAME=X,...] [--backward]

User errors print one line (`file:line: what went wrong and what to do`)
and exit with status 1; `--debug` shows the traceback instead.  `compile`
refuses anything that would lose a file before it compiles (gradgen.output),
builds every module in memory, then writes them all (temporary files, then
renames), so a failed compile leaves every existing module untouched.  A
compile that takes more than 2 s shows a progress line on a terminal's
stderr (gradgen.progress; `--quiet`: none, and no "wrote" lines).
"""

from __future__ import annotations

import argparse
import sys
import time

from gradgen.errors import GradgenError

EXIT_USER_ERROR = 1
EXIT_STALE = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradgen", description="Compile micrograd-style Value code to flat Python.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile model files to generated modules")
    c.add_argument("models", nargs="+", metavar="MODEL.py")
    c.add_argument("-o", "--out", default="generated", metavar="DIR", help="output directory (default: generated)")
    c.add_argument(
        "--backend",
        choices=("numpy", "torch", "numba"),
        default="numpy",
        help="numpy: plain Python for functions of floats, NumPy for arrays (default); torch: torch tensors; numba: the NumPy code compiled with numba's @njit",
    )
    c.add_argument("--check", action="store_true", help="write nothing; exit 1 if any module in DIR is out of date")
    c.add_argument(
        "--report", action="store_true", help="print node counts per pass, re-rolling fallbacks and compile times"
    )
    c.add_argument(
        "--no-reroll",
        dest="reroll",
        action="store_false",
        help="keep per-element code (no array ops from repetition); for comparison and debugging",
    )
    c.add_argument(
        "-q", "--quiet", action="store_true", help="no progress line and no 'wrote' lines (errors still print)"
    )
    c.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    i = sub.add_parser("ir", help="print a model's IR")
    i.add_argument("model", metavar="MODEL.py")
    i.add_argument("--function", metavar="NAME", help="only this exported function")
    i.add_argument("--grad", action="store_true", help="the forward + backward graph")
    i.add_argument("--optimized", action="store_true", help="after the passes (fold, cse, dce)")
    i.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    from gradgen.tools import check
    from gradgen.tools import draw

    k = sub.add_parser("check", help="compare compiled gradients with the engine, PyTorch and finite differences")
    k.add_argument("model", metavar="MODEL.py")
    k.add_argument("--module", metavar="FILE", help="check this generated module instead of compiling MODEL.py")
    k.add_argument("--function", metavar="NAME", help="only this exported function")
    k.add_argument("--at", action="append", metavar="NAME=X,...", help="a point to check (repeatable)")
    k.add_argument(
        "--points", type=_count, default=5, metavar="N", help="random points besides the example (default 5)"
    )
    k.add_argument("--seed", type=int, default=0, metavar="S", help="seed for the random points (default 0)")
    k.add_argument("--rtol", type=float, default=check.RTOL, help=f"vs engine and torch (default {check.RTOL:g})")
    k.add_argument("--atol", type=float, default=check.ATOL, help=f"vs engine and torch (default {check.ATOL:g})")
    k.add_argument(
        "--fd-rtol", type=float, default=check.FD_RTOL, help=f"vs finite differences (default {check.FD_RTOL:g})"
    )
    k.add_argument(
        "--fd-atol", type=float, default=check.FD_ATOL, help=f"vs finite differences (default {check.FD_ATOL:g})"
    )
    k.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    d = sub.add_parser("graph", help="draw a function's graph with data and grad at a point (needs Graphviz)")
    d.add_argument("model", metavar="MODEL.py")
    d.add_argument(
        "-o", "--out", required=True, metavar="FILE", help="FILE.svg, .png, .pdf (run dot) or .dot (DOT text)"
    )
    d.add_argument("--function", metavar="NAME", help="the exported function to draw (needed if there are several)")
    d.add_argument("--at", metavar="NAME=X,...", help="the point (default: the function's example)")
    d.add_argument("--backward", action="store_true", help="draw the backward graph (what f_grad computes) too")
    d.add_argument(
        "--max-nodes",
        type=_count,
        default=draw.MAX_NODES,
        metavar="N",
        help=f"draw at most N values, those nearest the output (default {draw.MAX_NODES})",
    )
    d.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return n


def _compile(args) -> int:
    from gradgen import output, progress
    from gradgen.api import build_source
    from gradgen.backends.module import shell_word
    from gradgen.frontend.loader import load_model

    targets = output.plan(args.models, args.out)  # refuse what would lose a file, before compiling
    built = []
    for target in targets:
        t0 = time.perf_counter()
        with progress.reporting(_printable(target.model), sys.stderr, enabled=not args.quiet):
            _, fns = load_model(target.model)
            text, irs, stats, seconds = build_source(
                fns, target.model, args.out, rerolling=args.reroll, backend=args.backend
            )
        seconds["total"] = time.perf_counter() - t0
        built.append((target, text, irs, stats, seconds))

    stale = []
    if args.check:
        for target, text, *_ in built:
            try:
                with open(target.path, encoding="utf-8") as f:
                    current = f.read()
            except (OSError, ValueError):
                current = None
            if current != text:
                stale.append(target)
                print(
                    f"{_printable(target.path)}: out of date; run: gradgen compile "
                    f"{shell_word(target.model)} -o {shell_word(args.out)}"
                )
    else:
        label = f"{len(built)} module{'s' * (len(built) != 1)}"
        with progress.reporting(label, sys.stderr, enabled=not args.quiet):
            progress.phase("writing")
            output.write_all([(target.path, text) for target, text, *_ in built])
    for target, text, irs, stats, seconds in built:
        if not args.check and not args.quiet:
            n_fns = f"{len(irs)} function{'s' * (len(irs) != 1)}"
            print(f"wrote {_printable(target.path)} ({target.note()}{n_fns}, {text.count(chr(10))} lines)")
        if args.report:
            _report(target.model, irs, stats, seconds)
    if args.check and not stale and not args.quiet:
        print(f"{len(built)} module{'s' * (len(built) != 1)} up to date")
    return EXIT_STALE if stale else 0


def _printable(text: str) -> str:
    """User text (a path) for the terminal: control and non-ASCII characters as escapes."""
    return text if all(" " <= c <= "~" for c in text) else ascii(text)[1:-1]


def _report(path, irs, stats, seconds) -> None:
    print(f"report for {path}")
    for s in stats:
        print(f"  {s.graph:<24} {s.name:<6} {s.before:>7} -> {s.after:<7} nodes  {s.seconds * 1e3:8.2f} ms")
    for ir in irs:
        if not any(n.op.value == "elem" for n in ir.traced_opt.nodes):
            continue  # nothing came from an array: nothing to re-roll
        if ir.forward_opt is ir.traced_opt:
            print(f"  {ir.name}: not re-rolled (--no-reroll): per-element code")
        elif not ir.fallbacks:
            print(f"  {ir.name}: re-rolled into array ops, no fallbacks")
        else:
            print(f"  {ir.name}: re-rolled, {len(ir.fallbacks)} fallback(s) to per-element code:")
            for fb in ir.fallbacks:
                print(f"    {fb}")
    print("  " + "  ".join(f"{k} {v:.3f} s" for k, v in seconds.items()))


def _ir(args) -> int:
    from gradgen.api import lower
    from gradgen.ir.printer import format_graph
    from gradgen.frontend.loader import load_model

    _, fns = load_model(args.model)
    if args.function:
        fns = [f for f in fns if f.__name__ == args.function]
        if not fns:
            raise GradgenError(f"no exported function named {args.function!r}", args.model)
    for k, f in enumerate(fns):
        ir = lower(f)
        if args.grad and ir.grad is not None:
            g = ir.grad_opt if args.optimized else ir.grad
        else:
            g = ir.forward_opt if args.optimized else ir.forward
        if k:
            print()
        print(format_graph(g), end="")
    return 0


def _check(args) -> int:
    from gradgen.tools import check

    at = [check.parse_at(text) for text in args.at] if args.at else None
    tol = check.Tolerances(args.rtol, args.atol, args.fd_rtol, args.fd_atol)
    reports = check.check_model(args.model, args.module, at, args.points, args.seed, args.function, tol)
    for k, r in enumerate(reports):
        if k:
            print()
        print(check.format_report(r))
    print(check.summary(reports))
    return 1 if any(r.failed for r in reports) else 0


def _graph(args) -> int:
    from gradgen.tools import check
    from gradgen.tools import draw

    at = check.parse_at(args.at) if args.at is not None else None
    for line in draw.graph_model(args.model, args.out, args.function, at, args.backward, args.max_nodes):
        print(line)
    return 0


COMMANDS = {"compile": _compile, "ir": _ir, "check": _check, "graph": _graph}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GradgenError as e:
        if args.debug:
            raise
        print(f"gradgen: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # an output or input error not caught where it happened: still one line
        if args.debug:
            raise
        where = f"{_printable(str(e.filename))}: " if e.filename else ""
        print(f"gradgen: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gradgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
