"""The faults of model servers and tools that tests/test_misbehaving_servers.py puts guidance_lite through (issue 9,
items 9 and 11-17), one case each: what was tried and what must come of it.

``CASES`` is read by the SECURITY.md generator (fields ``name``, ``category``, ``what``, ``expect``); the tests
parametrize over the names, and a test checks that every case has one.
"""

from __future__ import annotations

MALFORMED = "malformed answer"
STREAM = "malformed stream"
HANG = "slow or silent server"
SIZE = "oversized answer"
SECRETS = "secrets in errors"
TOOLS = "tool faults"

NAMED_ERROR = "a ModelError naming the server (base_url and model) and quoting the start of what it sent"

CASES: list[dict] = [
    # ---- whole (non-streamed) answers ---------------------------------------------------------------------------
    {
        "name": "no_choices",
        "category": MALFORMED,
        "what": "a JSON completion without a choices key",
        "expect": NAMED_ERROR,
    },
    {"name": "choices_null", "category": MALFORMED, "what": '"choices": null', "expect": NAMED_ERROR},
    {"name": "choices_empty", "category": MALFORMED, "what": '"choices": []', "expect": NAMED_ERROR},
    {
        "name": "not_json",
        "category": MALFORMED,
        "what": "a body that is not JSON, sent as application/json",
        "expect": NAMED_ERROR,
    },
    {
        "name": "html_502_with_status_200",
        "category": MALFORMED,
        "what": "a proxy's HTML 502 page sent with status 200",
        "expect": NAMED_ERROR,
    },
    {
        "name": "json_not_an_object",
        "category": MALFORMED,
        "what": "a JSON list instead of a completion object",
        "expect": NAMED_ERROR,
    },
    {"name": "not_utf8", "category": MALFORMED, "what": "a body that is not UTF-8", "expect": NAMED_ERROR},
    {
        "name": "message_of_wrong_type",
        "category": MALFORMED,
        "what": "a choice whose message is a string, not an object",
        "expect": "a ModelError naming the server and the part it can't read",
    },
    # ---- streams ------------------------------------------------------------------------------------------------
    {
        "name": "truncated_sse",
        "category": STREAM,
        "what": "an SSE stream cut off in the middle of an event (no finish_reason, no [DONE])",
        "expect": "a ModelError saying the stream ended without finishing, with the characters received",
    },
    {
        "name": "stream_without_finish",
        "category": STREAM,
        "what": "complete events, then [DONE], but no choice ever finishes",
        "expect": "a ModelError saying the stream ended without finishing",
    },
    {"name": "garbage_sse_line", "category": STREAM, "what": "a data: line that is not JSON", "expect": NAMED_ERROR},
    {
        "name": "html_for_a_stream",
        "category": STREAM,
        "what": "an HTML error page (status 200) answering a streamed request",
        "expect": NAMED_ERROR,
    },
    {
        "name": "error_event_in_stream",
        "category": STREAM,
        "what": 'a data: {"error": …} event in the middle of a stream',
        "expect": "a ModelError with the server's message",
    },
    {
        "name": "choice_index_out_of_range",
        "category": STREAM,
        "what": "a chunk for choice 1000000000 when one choice was asked for",
        "expect": "a ModelError naming the index (never a loop over a billion choices)",
    },
    {
        "name": "tool_call_fragment_of_wrong_type",
        "category": STREAM,
        "what": "a tool-call fragment whose index is a string and whose function is a list",
        "expect": "a ModelError naming the server and the part it can't read",
    },
    # ---- slow or silent servers ---------------------------------------------------------------------------------
    {
        "name": "never_answers",
        "category": HANG,
        "what": "a server that accepts the request and never answers",
        "expect": "a ModelError naming the read timeout, within the configured timeout",
    },
    {
        "name": "stalls_mid_stream",
        "category": HANG,
        "what": "a stream that stops sending after a few chunks, connection open",
        "expect": "a ModelError naming the read timeout and the characters received",
    },
    {
        "name": "trickles_forever",
        "category": HANG,
        "what": "a stream that keeps sending a chunk every 50 ms, never finishing",
        "expect": "a ModelError naming the total timeout, within it",
    },
    {
        "name": "connection_never_accepted",
        "category": HANG,
        "what": "a server whose listen backlog is full, so the connection is never accepted",
        "expect": "a ModelError naming the connect timeout",
    },
    {
        "name": "default_timeouts_are_finite",
        "category": HANG,
        "what": "a model built without timeout=",
        "expect": "connect 10 s, read 120 s, total 600 s, passed to the SDK's client",
    },
    # ---- size ---------------------------------------------------------------------------------------------------
    {
        "name": "body_over_the_cap",
        "category": SIZE,
        "what": "a whole answer larger than max_response_bytes",
        "expect": "a ModelError naming max_response_bytes, before the body is read",
    },
    {
        "name": "stream_over_the_cap",
        "category": SIZE,
        "what": "a stream that sends more than max_response_bytes",
        "expect": "a ModelError naming max_response_bytes, as soon as the cap is passed",
    },
    {
        "name": "one_huge_sse_line",
        "category": SIZE,
        "what": "a single SSE line larger than max_response_bytes",
        "expect": "a ModelError naming max_response_bytes (the line is never held whole)",
    },
    {
        "name": "long_answer_without_usage",
        "category": SIZE,
        "what": "an answer longer than tokens.EXACT_COUNT_LIMIT characters with no usage",
        "expect": "usage estimated from the length (4 characters a token), never tokenized",
    },
    # ---- secrets ------------------------------------------------------------------------------------------------
    {
        "name": "key_echoed_in_error",
        "category": SECRETS,
        "what": "a 401 whose message echoes the API key",
        "expect": "no exception in the chain mentions the key: messages, bodies, request headers",
    },
    {
        "name": "key_echoed_in_body",
        "category": SECRETS,
        "what": "an HTML page quoting the API key, sent as the answer",
        "expect": "the quoted body start has the key replaced by ***",
    },
    {
        "name": "key_in_chained_request",
        "category": SECRETS,
        "what": "a stream dropped mid-answer: the SDK's error keeps the request with its Authorization header",
        "expect": "the header is redacted in every exception of the chain",
    },
    # ---- tools --------------------------------------------------------------------------------------------------
    {
        "name": "tool_sleeps_an_hour",
        "category": TOOLS,
        "what": "a tool that sleeps for an hour, no tool_timeout given",
        "expect": "a timeout record after the default tool timeout (120 s); the run goes on",
    },
    {
        "name": "deeply_nested_arguments",
        "category": TOOLS,
        "what": "tool arguments of 100,000 nested [",
        "expect": "an invalid_json record (never RecursionError)",
    },
    {
        "name": "nan_in_tool_result",
        "category": TOOLS,
        "what": "a tool returning NaN and ±Infinity",
        "expect": "valid JSON in the tool message (null in their place)",
    },
]

NAMES = [case["name"] for case in CASES]
