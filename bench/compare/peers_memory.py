"""Memory recall on LoomFlow 0.20: insert throughput and recall_scored
latency (p50 / p99) for InMemoryMemory and VectorMemory (HashEmbedder), on
the same synthetic, topical episodes as bench/src/bin/memory_recall.rs (the
same xorshift generator and words, so both sides index the same texts).

    python peers_memory.py inmemory|vector N [QUERIES]

Prints one `RESULT {json}` line.
"""

import asyncio
import json
import sys
import time

from loomflow.core.types import Episode
from loomflow.memory import HashEmbedder, InMemoryMemory, VectorMemory

MASK = (1 << 64) - 1
TOPICS, TOPIC_WORDS, GENERAL = 200, 25, 5000
SYL = ["ka", "lo", "mi", "ten", "ru", "sa", "vo", "pel", "di", "nor", "gu", "fe", "zan", "qi", "bo", "ux"]


class Rng:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s << 13) & MASK
        s ^= s >> 7
        s ^= (s << 17) & MASK
        self.s = s
        return s

    def below(self, n):
        return self.next() % n


def word(i):
    w, n = "", i + 16
    while n > 0:
        w += SYL[n % 16]
        n //= 16
    return w


def general(rng):
    r = rng.below(GENERAL) * rng.below(GENERAL) // GENERAL
    return word(TOPICS * TOPIC_WORDS + r)


def episode_text(rng):
    topic = rng.below(TOPICS)
    words = [word(topic * TOPIC_WORDS + rng.below(TOPIC_WORDS)) for _ in range(8)]
    words += [general(rng) for _ in range(4)]
    return " ".join(words)


def query_text(rng):
    topic = rng.below(TOPICS)
    words = [word(topic * TOPIC_WORDS + rng.below(TOPIC_WORDS)) for _ in range(3)]
    words.append(general(rng))
    return " ".join(words)


def pct(sorted_ms, p):
    return sorted_ms[round((len(sorted_ms) - 1) * p)]


async def main():
    backend, n = sys.argv[1], int(sys.argv[2])
    queries = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    memory = InMemoryMemory() if backend == "inmemory" else VectorMemory(embedder=HashEmbedder())
    rng = Rng(0x2545F4914F6CDD1D)
    t0 = time.perf_counter()
    for _ in range(n):
        ep = Episode(session_id="bench", user_id="bench-user", input=episode_text(rng), output="ok")
        await memory.remember(ep)
    insert = time.perf_counter() - t0
    times, hits = [], 0
    for _ in range(queries):
        q = query_text(rng)
        t = time.perf_counter()
        r = await memory.recall_scored(q, limit=5, user_id="bench-user")
        times.append((time.perf_counter() - t) * 1000)
        hits += len(r)
    times.sort()
    print("RESULT " + json.dumps({
        "backend": f"loomflow-0.20 {type(memory).__name__}",
        "episodes": n,
        "insert_per_s": round(n / insert),
        "recall_p50_ms": pct(times, 0.5),
        "recall_p99_ms": pct(times, 0.99),
        "mean_hits": hits / queries,
    }))


asyncio.run(main())
