"""The same-run peers benchmark (``benchmarks/bench_peers.py``): guidance_lite against kani, the bare ``openai`` SDK
with each transport and raw aiohttp, every client in its own process and environment, one fast scripted server.

Modules: ``scenarios`` (what is asked and answered, shared by server and clients), ``server`` (the OpenAI-compatible
server process), ``envs`` (the peers' virtual environments), ``worker`` (the client process), ``runs_*`` (one module
per client library), ``measure`` (interleaving and medians), ``report`` (tables, targets, RESULTS.md) and
``profile_gl`` (profiles of guidance_lite's side). Only the standard library is imported at module level, so every
environment can import the package.
"""
