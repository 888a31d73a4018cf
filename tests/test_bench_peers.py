"""The peers benchmark's parts (``benchmarks/peers``): its server speaks the protocol the real openai SDK expects, the
worker runs guidance_lite and turns a missing library into a skip, a peer that can't be installed becomes a note,
the report says which targets are met, and the profile charges C time to the package that called it."""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import openai
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import bench_peers  # noqa: E402
from peers import envs, scenarios  # noqa: E402
from peers.measure import PROJECT, Client, ServerProcess, Session  # noqa: E402
from peers.profile_gl import cpu_by_package, package_of  # noqa: E402
from peers.report import BatchCell, Report, Results, Timing  # noqa: E402


@pytest.fixture(scope="module")
def server():
    process = ServerProcess()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def session():
    running = Session({PROJECT: Path(sys.executable)}, {})
    yield running
    running.close()


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0)


# ---- the server ---------------------------------------------------------------------------------------------------
def test_server_answers_plain_and_streamed_requests_as_the_sdk_expects(server):
    client = sdk(server.base_url(0))
    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": scenarios.question(7)}])
    assert plain.choices[0].message.content == scenarios.answer(7)
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model="m",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": scenarios.story_prompt(30)}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == scenarios.story(30) and len(text.split()) == 30
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 30  # word by word


def test_server_plays_the_tool_loop_one_call_per_round(server):
    client = sdk(server.base_url(0))
    messages = [
        {"role": "system", "content": scenarios.SYSTEM_PROMPT},
        {"role": "user", "content": scenarios.tool_question(2)},
    ]
    for done in range(2):
        reply = client.chat.completions.create(model="m", messages=messages, tools=[scenarios.WEATHER_TOOL])
        call = reply.choices[0].message.tool_calls[0]
        assert reply.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "get_weather",
            {"city": scenarios.city(done)},
        )
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "{}"},
        ]
    final = client.chat.completions.create(model="m", messages=messages, tools=[scenarios.WEATHER_TOOL])
    assert final.choices[0].message.content == scenarios.FINAL_ANSWER and not final.choices[0].message.tool_calls


def test_server_waits_the_latency_in_the_url_and_paces_events(server):
    client = sdk(server.base_url(0.2))
    started = time.perf_counter()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": scenarios.question(1)}])
    assert time.perf_counter() - started >= 0.2

    arrivals = [
        time.perf_counter()
        for chunk in sdk(server.base_url(0, pace=0.1)).chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": scenarios.story_prompt(3)}]
        )
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(arrivals) == 3 and arrivals[2] - arrivals[0] >= 0.15  # two gaps of 0.1 s, not one burst


def test_server_reports_its_cpu_and_rejects_what_it_does_not_serve(server):
    with urllib.request.urlopen(server.stats_url) as response:
        stats = json.loads(response.read())
    assert stats["cpu"] > 0 and stats["requests"] >= 0
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    for path, body, status in (("/v1/embeddings", b"{}", 404), ("/v1/chat/completions", b"{not json", 400)):
        request = urllib.request.Request(url.replace("/v1/chat/completions", path), data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        assert caught.value.code == status and "message" in json.loads(caught.value.read())["error"]


# ---- the worker ---------------------------------------------------------------------------------------------------
def test_worker_runs_a_guidance_lite_batch_and_checks_every_answer(server, session):
    gl = Client("gl", "guidance_lite", PROJECT, "runs_gl", "default", "guidance_lite")
    reply = session.run(
        gl,
        {
            "op": "batch",
            "base_url": server.base_url(0),
            "stats_url": server.stats_url,
            "concurrency": 4,
            "programs": 12,
        },
        timeout=300,
    )
    assert reply is not None, session.dropped
    assert reply["seconds"] > 0 and reply["cpu"] > 0 and reply["server_cpu"] >= 0

    first = Client("gl-astream", "astream", PROJECT, "runs_gl", "astream", "guidance_lite")
    reply = session.run(
        first, {"op": "first_text", "base_url": server.base_url(0), "words": 20, "repeats": 2}, timeout=300
    )
    assert reply is not None and len(reply["samples"]) == 2 and all(s > 0 for s in reply["samples"])


def test_worker_turns_a_missing_library_into_a_skip_and_keeps_serving(server, session):
    missing = Client("nothing", "a library that is not there", PROJECT, "runs_nothing", "x", "peer")
    request = {
        "op": "batch",
        "base_url": server.base_url(0),
        "stats_url": server.stats_url,
        "concurrency": 1,
        "programs": 1,
    }
    assert session.run(missing, request, timeout=60) is None
    assert session.dropped["nothing"].startswith("skipped")
    unknown = Client("odd", "an unknown variant", PROJECT, "runs_gl", "no-such-variant", "guidance_lite")
    assert session.run(unknown, request, timeout=60) is None
    assert "unknown guidance_lite batch variant" in session.dropped["odd"]
    good = Client("gl-plain", "guidance_lite plain", PROJECT, "runs_gl", "plain", "guidance_lite")
    assert session.run(good, request, timeout=300) is not None  # the same worker goes on


def test_a_peer_that_cannot_be_installed_becomes_a_note(tmp_path):
    spec = envs.EnvSpec("broken", ("this is not a requirement!!",), "a peer that can't be installed")
    built = envs.build(spec, root=tmp_path, echo=False)
    assert built.python is None
    assert built.note.startswith("pip install this is not a requirement!! failed")


# ---- the report ---------------------------------------------------------------------------------------------------
def client(key: str, role: str) -> Client:
    return Client(key, key, PROJECT, "runs_x", "v", role)


def results(gl_rate: float, kani_rate: float, server_cpu: float = 0.1) -> Results:
    found = Results(
        started=datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc),
        commit="abc1234 (peers)",
        mode="full",
        rounds=1,
        latency_batch=0.05,
        latency_short=0.02,
        load=[(1.0, 1.0, 1.0)],
    )

    def cell(key: str, role: str, rate: float) -> BatchCell:
        seconds = 100 / rate
        return BatchCell(
            client(key, role),
            100,
            100,
            0.05,
            [{"seconds": seconds, "cpu": seconds * 0.5, "server_cpu": seconds * server_cpu}],
        )

    found.batch[100] = {
        "gl": cell("gl", "guidance_lite", gl_rate),
        "kani-aiohttp": cell("kani-aiohttp", "peer", kani_rate),
    }
    found.first_text["burst"] = {
        "gl-stream": Timing(client("gl-stream", "guidance_lite"), [0.050]),
        "gl-astream": Timing(client("gl-astream", "guidance_lite"), [0.026]),
        "sdk-async": Timing(client("sdk-async", "baseline"), [0.025]),
    }
    found.tool_loop = {
        "gl-auto": Timing(client("gl-auto", "guidance_lite"), [0.30]),
        "kani": Timing(client("kani", "peer"), [0.40]),
    }
    found.imports = {"gl": Timing(client("gl", "guidance_lite"), [0.2]), "kani": Timing(client("kani", "peer"), [0.3])}
    return found


def test_report_says_which_targets_are_met_and_what_limits_the_missed_ones():
    lines = Report(results(gl_rate=600, kani_rate=300)).targets()
    assert lines[0].startswith("- MET batch") and "2.00×" in lines[0]
    assert lines[1].startswith("- MISSED first text") and "stream()" in lines[1] and "2.00×" in lines[1]
    assert lines[2].startswith("- MET first text") and "astream()" in lines[2]
    assert lines[3].startswith("- MISSED `import guidance_lite`")
    assert lines[4].startswith("- MET tool loop") and "0.75×" in lines[4]

    missed = Report(results(gl_rate=100, kani_rate=300)).targets()[0]
    assert missed.startswith("- MISSED batch") and "0.33×" in missed and "Limit: client CPU" in missed


def test_report_flags_a_saturated_server_and_names_the_commit():
    markdown = Report(results(gl_rate=600, kani_rate=300, server_cpu=0.95)).markdown()
    assert "commit abc1234 (peers)" in markdown and "2030-01-02 03:04 UTC" in markdown
    assert "the server saturated (0.95 of a core) while gl ran at c=100" in markdown
    assert "the server never saturated" in Report(results(600, 300, server_cpu=0.2)).markdown()


def test_results_file_gets_one_header_and_a_section_per_run(tmp_path):
    path = tmp_path / "RESULTS.md"
    bench_peers.record("## run one\n", path)
    bench_peers.record("## run two\n", path)
    text = path.read_text()
    assert text.count("# Benchmark results") == 1 and text.index("## run one") < text.index("## run two")


# ---- the profile --------------------------------------------------------------------------------------------------
def test_profile_charges_c_builtins_to_the_package_that_called_them():
    def work() -> None:
        for _ in range(300):
            sorted(json.loads(json.dumps(list(range(200)))))

    profiler = cProfile.Profile()
    profiler.runcall(work)
    stats = pstats.Stats(profiler)
    shares = cpu_by_package(stats)
    table = stats.stats  # type: ignore[attr-defined]
    sorting = next(values[2] for func, values in table.items() if func[2] == "<built-in method builtins.sorted>")
    own_code = sum(values[2] for func, values in table.items() if func[0] == __file__)
    assert shares["other"] == pytest.approx(own_code + sorting)  # sorted() is charged to this file, its caller
    assert shares["stdlib json"] > 0
    assert sum(shares.values()) == pytest.approx(sum(v[2] for v in stats.stats.values()))  # type: ignore[attr-defined]
    assert package_of("/x/lib/python3.11/site-packages/httpcore2/_sync/pool.py") == "httpcore2"
    assert package_of(str(Path(__file__).parents[1] / "guidance_lite" / "program.py")) == "guidance_lite"
