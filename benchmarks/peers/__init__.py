"""The same-run peers benchmark (``benchmarks/bench_peers.py``): guidance_lite against kani, the bare ``openai`` SDK
with each transport and raw aiohttp, every client in its own process and environment, one fast scripted server.

Modules: ``scenarios`` (what is asked and answered, shared by server and clients), ``server`` (the OpenAI-compatible
server process), ``envs`` (the peers' virtual environments), ``worker`` (the client process), ``clients`` (what the
client modules share), ``runs_gl`` / ``runs_sdk`` / ``runs_kani`` / ``runs_aiohttp`` (one module per client library,
each importing its library, so each imports only in an environment that has it), ``measure`` (processes and
interleaved runs), ``report`` (tables, targets, RESULTS.md) and ``profile_gl`` (profiles of guidance_lite's side).
Every other module imports only the standard library, so any environment can run the worker.
"""
