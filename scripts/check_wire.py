#!/usr/bin/env python3
"""Checks loomflow's provider fixtures and request bodies with the official SDKs.

Nothing here was written against our own types: every stream event the fake
provider served during the test run (dumped by the testkit when
LOOMFLOW_FIXTURE_DUMP is set) is parsed with the `openai` / `anthropic` Python
SDKs' models and fed through their own stream accumulators, every error body
through their error models, every token-count reply through their count
types, and every request body we snapshot (insta
`.snap` files) through their request-parameter types.

Gemini's stream events and request bodies go through the `google-genai`
SDK's types (which forbid unknown fields).

Usage: check_wire.py DUMP_DIR SNAPSHOT_DIR...
"""

import json
import sys
import typing
from pathlib import Path

from pydantic import TypeAdapter

import anthropic  # noqa: F401  (version printed below)
import openai
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, RawMessageStreamEvent
from anthropic.types import MessageTokensCount
from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types import CreateEmbeddingResponse
from openai.types.responses import InputTokenCountResponse, ResponseStreamEvent
from openai.types.responses.input_token_count_params import InputTokenCountParams
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from openai.types.embedding_create_params import EmbeddingCreateParams
from openai.types.shared import ErrorObject
import google.genai
from google.genai import types as gtypes

# Kept alive: pydantic's lazy iterators refer back to their adapter.
REQUEST_ADAPTERS = {
    "anthropic": TypeAdapter(MessageCreateParamsStreaming),
    "openai": TypeAdapter(CompletionCreateParamsStreaming),
    "openai embeddings": TypeAdapter(EmbeddingCreateParams),
    "openai responses": TypeAdapter(ResponseCreateParamsStreaming),
    "anthropic count_tokens": TypeAdapter(MessageCountTokensParams),
    "openai responses input_tokens": TypeAdapter(InputTokenCountParams),
}
RESPONSE_EVENT_ADAPTER = TypeAdapter(ResponseStreamEvent)
EVENT_ADAPTER = TypeAdapter(RawMessageStreamEvent)

failures: list[str] = []
counts: dict[str, int] = {}


def fail(where: str, what: str) -> None:
    failures.append(f"{where}: {what}")


def count(kind: str) -> None:
    counts[kind] = counts.get(kind, 0) + 1


def force(value):
    """Request params use lazily validated iterables; walk them so every
    element is validated."""
    if isinstance(value, dict):
        return {k: force(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    try:
        return [force(v) for v in value]
    except TypeError:
        return value


def check_openai_chat(where: str, record: dict) -> None:
    if record["kind"] == "json":
        ErrorObject.model_validate(record["body"]["error"])
        count("openai error bodies")
        return
    state = ChatCompletionStreamState()
    done = False
    for data in record["events"]:
        if data == "[DONE]":
            done = True
            continue
        obj = json.loads(data)
        if "error" in obj:
            ErrorObject.model_validate(obj["error"])
            count("openai in-stream errors")
            return
        state.handle_chunk(ChatCompletionChunk.model_validate(obj))
        count("openai chunks")
    if record["cut"]:
        return
    if not done:
        fail(where, "stream has no [DONE]")
        return
    final = state.get_final_completion()
    choice = final.choices[0]
    for call in choice.message.tool_calls or []:
        json.loads(call.function.arguments)
    if choice.finish_reason is None:
        fail(where, "no finish_reason")
    if final.usage is None:
        fail(where, "no usage chunk")
    count("openai streams accumulated")


def check_openai_embeddings(where: str, record: dict) -> None:
    body = record["body"]
    if record["status"] >= 400:
        ErrorObject.model_validate(body["error"])
        count("openai error bodies")
        return
    reply = CreateEmbeddingResponse.model_validate(body)
    if sorted(d.index for d in reply.data) != list(range(len(reply.data))):
        fail(where, "embedding indexes are not 0..n")
    count("openai embedding responses")


def check_openai_responses(where: str, record: dict) -> None:
    if record["kind"] == "json":
        ErrorObject.model_validate(record["body"]["error"])
        count("openai error bodies")
        return
    state = ResponseStreamState(input_tools=[], text_format=openai.omit)
    finished = None
    for data in record["events"]:
        event = RESPONSE_EVENT_ADAPTER.validate_python(json.loads(data))
        count("openai responses events")
        if event.type == "error":
            return
        state.handle_event(event)
        if event.type in ("response.completed", "response.incomplete"):
            finished = event.response
    if record["cut"]:
        return
    if finished is None:
        fail(where, "stream has no response.completed")
        return
    if finished.usage is None:
        fail(where, "no usage")
    for item in finished.output:
        if item.type == "function_call":
            json.loads(item.arguments)
    count("openai responses streams accumulated")


def check_anthropic(where: str, record: dict) -> None:
    if record["kind"] == "json":
        ErrorResponse.model_validate(record["body"])
        count("anthropic error bodies")
        return
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    stopped = False
    for data in record["events"]:
        obj = json.loads(data)
        if obj.get("type") == "error":
            ErrorResponse.model_validate(obj)
            count("anthropic in-stream errors")
            return
        if obj.get("type") == "ping":
            count("anthropic events")
            continue
        event = EVENT_ADAPTER.validate_python(obj)
        count("anthropic events")
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
        stopped = stopped or obj.get("type") == "message_stop"
    if record["cut"]:
        return
    if not stopped or snapshot is None:
        fail(where, "stream has no message_stop")
        return
    if snapshot.stop_reason is None:
        fail(where, "no stop_reason")
    for block in snapshot.content:
        if block.type == "tool_use" and not isinstance(block.input, dict):
            fail(where, f"tool_use input did not assemble: {block.input!r}")
        if block.type == "thinking" and not block.signature:
            fail(where, "thinking block without signature")
    count("anthropic streams accumulated")


GEMINI_REQUEST_FIELDS = {
    "contents": lambda v: [gtypes.Content.model_validate(c) for c in v],
    "systemInstruction": gtypes.Content.model_validate,
    "tools": lambda v: [gtypes.Tool.model_validate(t) for t in v],
    "toolConfig": gtypes.ToolConfig.model_validate,
    "generationConfig": gtypes.GenerationConfig.model_validate,
    "safetySettings": lambda v: [gtypes.SafetySetting.model_validate(x) for x in v],
    "cachedContent": str,
}


def check_gemini(where: str, record: dict) -> None:
    """Every event a GenerateContentResponse; the stream ends with a
    finishReason; error bodies are Google's {code, message, status}."""
    if record["kind"] == "json":
        err = record["body"]["error"]
        if not (isinstance(err["code"], int) and isinstance(err["message"], str) and isinstance(err["status"], str)):
            fail(where, f"not a Google error body: {err!r}")
        count("gemini error bodies")
        return
    finish = None
    for data in record["events"]:
        obj = json.loads(data)
        if "error" in obj and "candidates" not in obj:
            count("gemini in-stream errors")
            return
        reply = gtypes.GenerateContentResponse.model_validate(obj)
        count("gemini events")
        for candidate in reply.candidates or []:
            finish = candidate.finish_reason or finish
    if record["cut"]:
        return
    if finish is None:
        fail(where, "stream has no finishReason")
        return
    count("gemini streams")


def check_gemini_request(where: str, body: dict) -> None:
    unknown = set(body) - set(GEMINI_REQUEST_FIELDS)
    if unknown:
        fail(where, f"fields the Gemini API does not know: {sorted(unknown)}")
    for key, check in GEMINI_REQUEST_FIELDS.items():
        if key in body:
            check(body[key])
    count("gemini requests")


def check_count(where: str, record: dict) -> None:
    """A token-count reply (JSON) or an error body."""
    anthropic_side = record["dialect"] == "anthropic-count"
    body = record["body"]
    if record["status"] >= 400:
        if anthropic_side:
            ErrorResponse.model_validate(body)
        else:
            ErrorObject.model_validate(body["error"])
        count("token-count error bodies")
        return
    if anthropic_side:
        MessageTokensCount.model_validate(body)
    else:
        InputTokenCountResponse.model_validate(body)
    count("token-count replies")


def check_request(where: str, body: dict) -> None:
    if "contents" in body:
        check_gemini_request(where, body)
        return
    if "count_tokens" in where:
        # Snapshots of count requests say so in their name.
        if "messages" in body:
            params, provider = MessageCountTokensParams, "anthropic count_tokens"
        else:
            params, provider = InputTokenCountParams, "openai responses input_tokens"
    elif "input" in body and "store" in body:
        params, provider = ResponseCreateParamsStreaming, "openai responses"
    elif "input" in body and "messages" not in body:
        params, provider = EmbeddingCreateParams, "openai embeddings"
    elif "max_tokens" in body and "messages" in body and "stream_options" not in body:
        params, provider = MessageCreateParamsStreaming, "anthropic"
    else:
        params, provider = CompletionCreateParamsStreaming, "openai"
    allowed = set(typing.get_type_hints(params))
    unknown = set(body) - allowed
    if unknown:
        fail(where, f"fields the SDK does not know: {sorted(unknown)}")
    force(REQUEST_ADAPTERS[provider].validate_python(body))
    count(f"{provider} requests")


def snapshot_body(path: Path) -> dict:
    text = path.read_text()
    # insta: a `---` header block, then the JSON.
    _, _, body = text.split("---", 2)
    return json.loads(body)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump = Path(sys.argv[1])
    records = sorted(dump.glob("*.json"))
    if not records:
        print(f"check_wire: no fixtures in {dump}; was LOOMFLOW_FIXTURE_DUMP set for the tests?", file=sys.stderr)
        return 1
    for path in records:
        record = json.loads(path.read_text())
        where = f"{path.name} ({record['dialect']} {record['kind']})"
        try:
            if record["kind"] == "raw":
                count("deliberately malformed streams (skipped)")
            elif record["dialect"] == "openai-chat":
                check_openai_chat(where, record)
            elif record["dialect"] == "openai-responses":
                check_openai_responses(where, record)
            elif record["dialect"] == "openai-embeddings":
                check_openai_embeddings(where, record)
            elif record["dialect"] == "anthropic":
                check_anthropic(where, record)
            elif record["dialect"] == "gemini":
                check_gemini(where, record)
            elif record["dialect"] in ("anthropic-count", "openai-responses-count"):
                check_count(where, record)
            else:
                fail(where, "unknown dialect")
        except Exception as e:  # an SDK model rejected it
            fail(where, f"{type(e).__name__}: {str(e)[:600]}")
    for snapshots in sys.argv[2:]:
        for path in sorted(Path(snapshots).glob("*.snap")):
            body = snapshot_body(path)
            try:
                check_request(path.name, body)
            except Exception as e:
                fail(path.name, f"{type(e).__name__}: {str(e)[:600]}")
    print(f"check_wire: openai {openai.__version__}, anthropic {anthropic.__version__}, google-genai {google.genai.__version__}")
    for kind, n in sorted(counts.items()):
        print(f"  {n:4} {kind}")
    if failures:
        print(f"check_wire: {len(failures)} fixture(s) rejected by the official SDKs:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print("check_wire: every fixture and request parses with the official SDKs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
