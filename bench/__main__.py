"""`make bench`: every figure the README quotes, measured in one run on this machine.

Each bench module exposes `run() -> [(label, figure)]` and runs in a process of its own. Results are
printed and written into README.md between the bench markers, with the command and the date, so the
README never quotes a stale guess.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

MODULES = ["bench.onboarding", "bench.coupons", "bench.campaigns", "bench.planner", "bench.throughput", "bench.orders",
           "bench.package_codes"]
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
ROWS = "BENCH-ROWS "


def main(argv: list[str]) -> int:
    if argv[:1] == ["--rows"]:                  # the child: one module, its rows as JSON on the last line
        rows = importlib.import_module(argv[1]).run()
        print(ROWS + json.dumps(rows, ensure_ascii=False), flush=True)
        return 0
    wanted = [m for m in MODULES if not argv or any(a in m for a in argv)]
    sections = []
    for name in wanted:
        started = time.monotonic()
        rows = _run_alone(name)
        print(f"\n## {name.split('.')[-1]}  ({time.monotonic() - started:.0f} s)")
        for label, figure in rows:
            print(f"  {label}: {figure}")
        sections.append((name.split(".")[-1], rows))
    _write_readme(sections)
    return 0


def _run_alone(name: str) -> list[tuple[str, str]]:
    """Run one bench module in a fresh interpreter: its cold-start figures see nothing another module
    imported, and its emulator and per-container caches start empty, as a new container's would."""
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING")}
    done = subprocess.run([sys.executable, "-m", "bench", "--rows", name], env=env, stdout=subprocess.PIPE,
                          text=True, cwd=README.parent)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith(ROWS):
        sys.stdout.write(done.stdout)
        raise SystemExit(f"bench {name} failed (exit {done.returncode})")
    return [tuple(row) for row in json.loads(lines[-1][len(ROWS):])]


def _write_readme(sections) -> None:
    """Rewrite the README's figures: the modules just run replace their own tables (each table says the
    day it was measured), the others stay as they were, in MODULES' order. `make bench` runs them all."""
    if not README.exists():
        return
    text = README.read_text()
    if START not in text or END not in text:
        return
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    tables = dict(_tables(block))
    today = datetime.date.today()
    for title, rows in sections:
        table = [f"**{title}** (measured {today})", "", "| measure | figure |", "|---|---|"]
        table += [f"| {label} | {figure} |" for label, figure in rows]
        tables[title] = "\n".join(table)
    order = [m.split(".")[-1] for m in MODULES]
    titles = sorted(tables, key=lambda t: order.index(t) if t in order else len(order))
    lines = [START, "",
             f"Measured by `make bench` ({platform.machine()}, {platform.python_version()}, 2 shared cores; the local"
             " emulator stands in for AWS, so absolute times are pessimistic — ratios are what to compare).", ""]
    for title in titles:
        lines += [tables[title], ""]
    lines.append(END)
    README.write_text(head + "\n".join(lines) + tail)


def _tables(block: str):
    """(title, its table's text) for each `**title**` table of the README's figures."""
    title, body = None, []
    for line in block.splitlines():
        if line.startswith("**") and "**" in line[2:]:
            if title:
                yield title, "\n".join(body).strip()
            title, body = line[2:line.index("**", 2)], [line]
        elif title:
            body.append(line)
    if title:
        yield title, "\n".join(body).strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
