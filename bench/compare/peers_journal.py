"""The journal scenario of bench/ on the Python reference (LoomFlow 0.20).

One agent whose model asks for one `lookup` tool call per turn until the
transcript holds three tool results, then answers: four model calls and three
tool calls per run, the run of `bench/benches/journal_overhead.rs`. Each run
uses a fresh session (LoomFlow gives each `run()` one unless told otherwise).
Variants: no runtime (in-process) and `SqliteRuntime(path)` (its WAL journal).
The journal rows a run writes are counted from the SQLite file; the cost per
journaled step is (journaled run - plain run) / rows per run.

Prints one `RESULT {json}` line.

    python peers_journal.py --runs 300 --reps 3
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
N_TOOLS = 3


def transcript_model():
    from loomflow import Role, ToolCall, Usage

    class TranscriptModel:
        name = "transcript-model"

        async def complete(self, messages, *, tools=None, **_):
            done = sum(1 for m in messages if m.role == Role.TOOL)
            if done < N_TOOLS:
                call = ToolCall(tool="lookup", args={"q": f"q{done}"})
                return "", [call], Usage(input_tokens=10, output_tokens=5), "tool_use"
            return "final answer", [], Usage(input_tokens=10, output_tokens=2), "stop"

        async def stream(self, messages, *, tools=None, **_):
            raise NotImplementedError("run() completes; it never streams")

    return TranscriptModel()


def count_rows(path: str) -> int:
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        return sum(con.execute(f"select count(*) from {t}").fetchone()[0]
                   for t in ("journal_steps", "journal_streams") if t in tables)
    finally:
        con.close()


async def measure(runs: int, reps: int) -> dict:
    from loomflow import Agent, tool
    from loomflow.runtime import SqliteRuntime

    @tool
    async def lookup(q: str) -> str:
        """Look something up."""
        return f"result for {q}"

    model = transcript_model()
    tmp = tempfile.mkdtemp(prefix="lf-journal-compare-")
    per_run = {"plain": [], "sqlite": []}
    rows_per_run = []
    for rep in range(reps):
        for variant in ("plain", "sqlite"):
            path = os.path.join(tmp, f"journal-{rep}.db")
            kw = {"runtime": SqliteRuntime(path)} if variant == "sqlite" else {}
            agent = Agent("bench", model=model, tools=[lookup], **kw)
            warm = 10
            for i in range(warm):
                r = await agent.run(f"warm {i}")
                assert r.output == "final answer" and r.turns == N_TOOLS + 1, (r.output, r.turns)
            t0 = time.perf_counter()
            for i in range(runs):
                await agent.run(f"task {i}")
            per_run[variant].append((time.perf_counter() - t0) / runs * 1e6)
            if variant == "sqlite":
                rows_per_run.append(count_rows(path) / (runs + warm))
    plain = statistics.median(per_run["plain"])
    journaled = statistics.median(per_run["sqlite"])
    rows = statistics.median(rows_per_run)
    return {"fw": "loomflow", "scenario": "journal", "us_per_run_plain": plain,
            "us_per_run_sqlite": journaled, "journal_rows_per_run": rows,
            "us_per_step_sqlite": (journaled - plain) / rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    print("RESULT " + json.dumps(asyncio.run(measure(a.runs, a.reps))), flush=True)
