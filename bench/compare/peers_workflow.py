"""The three workflow scenarios of bench/workflow_overhead on the Python peers.

    chain   10 trivial async nodes in a line (10 steps per run)
    cycle   draft -> critique -> refine, a router on refine back to draft,
            50 laps (150 steps per run)
    fanout  src -> 100 trivial branches -> one AND-join (102 steps per run)

Each repetition runs RUNS workflow invocations in sequence after a warm-up;
the script prints one `RESULT {json}` line with the median microseconds per
run and per step over the repetitions.

    python peers_workflow.py loomflow chain --runs 2000
    python peers_workflow.py langgraph fanout --runs 200
"""
from __future__ import annotations

import argparse
import asyncio
import json
import operator
import statistics
import time
from typing import Annotated, TypedDict

CHAIN_LEN = 10
LAPS = 50
FANOUT = 100
STEPS = {"chain": CHAIN_LEN, "cycle": 3 * LAPS, "fanout": FANOUT + 2}


def loomflow_workflow(scenario: str):
    from loomflow import END, Workflow

    def numbered(i, delta):
        async def node(x):
            return x + delta
        node.__name__ = f"n{i}"
        return node

    if scenario == "chain":
        return Workflow.chain([numbered(i, 1) for i in range(CHAIN_LEN)]), 0, CHAIN_LEN

    if scenario == "cycle":
        wf = Workflow("refine", max_steps=10_000, max_visits_per_node=10_000)
        wf.add_node("draft", numbered(0, 0))
        wf.add_node("critique", numbered(1, 0))
        wf.add_node("refine", numbered(2, 1))
        wf.set_start("draft")
        wf.add_edge("draft", "critique")
        wf.add_edge("critique", "refine")
        wf.add_router("refine", lambda v: "again" if v < LAPS else "done",
                      {"again": "draft", "done": END})
        return wf, 0, LAPS

    wf = Workflow("fan", max_steps=10_000, max_visits_per_node=10_000, max_concurrency=FANOUT)
    wf.add_node("src", numbered(0, 0))
    wf.set_start("src")

    async def join(xs):
        return sum(xs)

    for i in range(FANOUT):
        wf.add_node(f"b{i}", numbered(i, i))
        wf.add_edge("src", f"b{i}")
    wf.add_node("join", join)
    for i in range(FANOUT):
        wf.add_edge(f"b{i}", "join")
    wf.add_edge("join", END)
    return wf, 0, sum(range(FANOUT))


async def loomflow_run(wf, value):
    return (await wf.run(value)).output


def langgraph_workflow(scenario: str):
    from langgraph.graph import END, START, StateGraph

    class Counter(TypedDict):
        x: int

    def add(delta):
        async def node(state):
            return {"x": state["x"] + delta}
        return node

    if scenario == "chain":
        g = StateGraph(Counter)
        for i in range(CHAIN_LEN):
            g.add_node(f"n{i}", add(1))
        g.add_edge(START, "n0")
        for i in range(CHAIN_LEN - 1):
            g.add_edge(f"n{i}", f"n{i + 1}")
        g.add_edge(f"n{CHAIN_LEN - 1}", END)
        return g.compile(), {"x": 0}, CHAIN_LEN

    if scenario == "cycle":
        g = StateGraph(Counter)
        g.add_node("draft", add(0))
        g.add_node("critique", add(0))
        g.add_node("refine", add(1))
        g.add_edge(START, "draft")
        g.add_edge("draft", "critique")
        g.add_edge("critique", "refine")
        g.add_conditional_edges("refine", lambda s: "again" if s["x"] < LAPS else "done",
                                {"again": "draft", "done": END})
        return g.compile(), {"x": 0}, LAPS

    class Fan(TypedDict):
        x: int
        vals: Annotated[list, operator.add]
        total: int

    g = StateGraph(Fan)

    async def src(state):
        return {}

    def branch(i):
        async def node(state):
            return {"vals": [state["x"] + i]}
        return node

    async def join(state):
        return {"total": sum(state["vals"])}

    g.add_node("src", src)
    g.add_edge(START, "src")
    for i in range(FANOUT):
        g.add_node(f"b{i}", branch(i))
        g.add_edge("src", f"b{i}")
    g.add_node("join", join)
    g.add_edge([f"b{i}" for i in range(FANOUT)], "join")
    g.add_edge("join", END)
    return g.compile(), {"x": 0, "vals": []}, sum(range(FANOUT))


async def langgraph_run(app, value):
    out = await app.ainvoke(value, {"recursion_limit": 10_000})
    return out.get("total", out["x"])


FRAMEWORKS = {
    "loomflow": (loomflow_workflow, loomflow_run),
    "langgraph": (langgraph_workflow, langgraph_run),
}


async def bench(fw: str, scenario: str, runs: int, reps: int) -> dict:
    build, run = FRAMEWORKS[fw]
    wf, value, expected = build(scenario)
    out = await run(wf, value)
    assert out == expected, (fw, scenario, out, expected)
    for _ in range(max(20, runs // 20)):
        await run(wf, value)
    per_run = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(runs):
            await run(wf, value)
        per_run.append((time.perf_counter() - t0) / runs * 1e6)
    us = statistics.median(per_run)
    return {"bench": "workflow", "fw": fw, "scenario": scenario, "runs": runs, "reps": reps,
            "steps_per_run": STEPS[scenario], "us_per_run": us,
            "us_per_step": us / STEPS[scenario]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("fw", choices=sorted(FRAMEWORKS))
    p.add_argument("scenario", choices=sorted(STEPS))
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    rec = asyncio.run(bench(a.fw, a.scenario, a.runs, a.reps))
    print("RESULT " + json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
