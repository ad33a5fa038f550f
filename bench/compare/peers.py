"""The two agent scenarios of bench/ on the Python peers (LoomFlow 0.20, LangGraph).

Scenario (a) `seq`: one agent, a model that answers with one `lookup` tool call per
turn until the transcript holds three tool results, then "final answer"; runs in
sequence; reports the median per-run time over repetitions.
Scenario (b) `conc`: N concurrent runs of that agent with the model sleeping
LATENCY seconds per call; reports wall time, throughput and peak RSS.

The model decides its turn from the transcript, so one instance serves every
concurrent run. Prints one `RESULT {json}` line per measurement.

    python peers.py loomflow seq --runs 1000
    python peers.py langgraph conc --n 10000 --latency 0.05
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

N_TOOLS = 3


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1.0


def loomflow_agent(latency: float):
    from loomflow import Agent, Role, ToolCall, Usage, tool
    from loomflow.core.types import ModelChunk

    class TranscriptModel:
        name = "transcript-model"

        def _turn(self, messages):
            done = sum(1 for m in messages if m.role == Role.TOOL)
            if done < N_TOOLS:
                call = ToolCall(tool="lookup", args={"q": f"q{done}"})
                return "", [call], Usage(input_tokens=10, output_tokens=5), "tool_use"
            return "final answer", [], Usage(input_tokens=10, output_tokens=2), "stop"

        async def complete(self, messages, *, tools=None, **_):
            if latency:
                await asyncio.sleep(latency)
            return self._turn(messages)

        async def stream(self, messages, *, tools=None, **_):
            text, calls, usage, finish = await self.complete(messages)
            if text:
                yield ModelChunk(kind="text", text=text)
            for c in calls:
                yield ModelChunk(kind="tool_call", tool_call=c)
            yield ModelChunk(kind="finish", finish_reason=finish, usage=usage)

    @tool
    async def lookup(q: str) -> str:
        """Look something up."""
        return f"result for {q}"

    agent = Agent("You are a benchmark agent.", model=TranscriptModel(), tools=[lookup])

    async def run(prompt: str):
        r = await agent.run(prompt)
        assert r.turns == N_TOOLS + 1, r
    return run


def langgraph_agent(latency: float):
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langgraph.prebuilt import create_react_agent

    class TranscriptChat(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "transcript-chat"

        def _turn(self, messages):
            done = sum(1 for m in messages if isinstance(m, ToolMessage))
            if done < N_TOOLS:
                msg = AIMessage(content="", tool_calls=[
                    {"name": "lookup", "args": {"q": f"q{done}"}, "id": f"call_{done}", "type": "tool_call"}])
            else:
                msg = AIMessage(content="final answer")
            return ChatResult(generations=[ChatGeneration(message=msg)])

        def _generate(self, messages, stop=None, run_manager=None, **_):
            if latency:
                time.sleep(latency)
            return self._turn(messages)

        async def _agenerate(self, messages, stop=None, run_manager=None, **_):
            if latency:
                await asyncio.sleep(latency)
            return self._turn(messages)

        def bind_tools(self, tools, **kw):
            return self

    @tool
    async def lookup(q: str) -> str:
        """Look something up."""
        return f"result for {q}"

    graph = create_react_agent(TranscriptChat(), [lookup])

    async def run(prompt: str):
        out = await graph.ainvoke({"messages": [("user", prompt)]})
        assert out["messages"][-1].content == "final answer"
    return run


AGENTS = {"loomflow": loomflow_agent, "langgraph": langgraph_agent}


async def seq(fw: str, runs: int, reps: int) -> dict:
    run = AGENTS[fw](0.0)
    for i in range(min(50, runs)):
        await run(f"warmup {i}")
    per_run = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(runs):
            await run(f"prompt {i}")
        per_run.append((time.perf_counter() - t0) / runs * 1e6)
    return {"scenario": "seq", "fw": fw, "runs": runs, "us_per_run": statistics.median(per_run)}


async def conc(fw: str, n: int, latency: float) -> dict:
    run = AGENTS[fw](latency)
    await run("warmup")
    t0 = time.perf_counter()
    await asyncio.gather(*(run(f"prompt {i}") for i in range(n)))
    wall = time.perf_counter() - t0
    floor = latency * (N_TOOLS + 1)
    return {"scenario": "conc", "fw": fw, "runs": n, "wall_ms": wall * 1e3,
            "over_floor_pct": (wall / floor - 1) * 100, "runs_per_s": n / wall,
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("fw", choices=sorted(AGENTS))
    p.add_argument("scenario", choices=["seq", "conc"])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--latency", type=float, default=0.05)
    a = p.parse_args()
    if a.scenario == "seq":
        rec = asyncio.run(seq(a.fw, a.runs, a.reps))
    else:
        rec = asyncio.run(conc(a.fw, a.n, a.latency))
    print("RESULT " + json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
