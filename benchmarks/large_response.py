"""How long one very long answer without ``usage`` takes to come back (issue 9: 20 MB took 17 s, counting its
tokens with tiktoken; 100 MB aborted the interpreter).

A ScriptedServer in a child process answers ``--mb`` megabytes of words, once as one JSON body and once as an SSE
stream (1,000-character chunks), with no ``usage``, so the client estimates it; the client's wall time and CPU time
are printed (CPU time is the steadier figure on a busy machine). Works on any checkout (it only uses ScriptedServer
features older than the fix), so the same command measures before and after.

Usage: ``python benchmarks/large_response.py [--mb 20] [--letters] [--max-response-bytes N]`` (``--letters``: one
letter repeated, the text tiktoken is slowest on, instead of words).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

import guidance_lite as gl
from guidance_lite.models.base import Completion, GenRequest
from guidance_lite.testing import ScriptedServer

WORDS = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "


async def one_answer(model: object, stream: bool) -> tuple[float, float, int, object]:
    request = GenRequest(messages_fn=lambda: [{"role": "user", "content": "write a lot"}], stream=stream)
    start, cpu = time.perf_counter(), time.process_time()
    final = None
    async for item in model.stream(request):  # type: ignore[attr-defined]
        if isinstance(item, Completion):
            final = item
    assert final is not None
    return time.perf_counter() - start, time.process_time() - cpu, len(final.choices[0].text), final.usage


def serve(megabytes: float, letters: bool) -> None:
    """The child process: a ScriptedServer answering the long content to every request until stdin closes."""
    size = int(megabytes * 1_000_000)
    content = "x" * size if letters else (WORDS * (size // len(WORDS) + 1))[:size]
    with ScriptedServer(lambda body: {"content": content, "usage": False, "chunk_size": 1000}) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="megabytes of content (default 20)")
    parser.add_argument("--max-response-bytes", type=int, default=None, help="the model's cap (default: its own)")
    parser.add_argument("--letters", action="store_true", help="one letter repeated instead of words")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.mb, args.letters)
        return
    kwargs = {} if args.max_response_bytes is None else {"max_response_bytes": args.max_response_bytes}
    command = [sys.executable, __file__, "--serve", "--mb", str(args.mb), *(["--letters"] if args.letters else [])]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None and server.stdin is not None
        base_url = server.stdout.readline().strip()
        model = gl.models.OpenAI("scripted-model", base_url=base_url, max_retries=0, **kwargs)
        for stream in (False, True):
            try:
                seconds, cpu, length, usage = asyncio.run(one_answer(model, stream))
                outcome = f"{length:,} characters in {seconds:.2f} s ({cpu:.2f} s CPU), usage {usage}"
            except gl.GuidanceLiteError as err:
                outcome = f"{type(err).__name__}: {str(err)[:160]}"
            print(f"{'streamed' if stream else 'one body'}: {outcome}", flush=True)
        server.stdin.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the client process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
