"""Look at the notebook view as users see it: JupyterLab + headless Chromium (Debian's ``chromium``), screenshots of
the light theme, the dark theme and an untrusted notebook (saved outputs, re-opened), a live run sampled as it
updates, and the contrast of every text node measured in the browser.

Not part of the suite (it needs JupyterLab, Playwright and a system Chromium): run it by hand and look at the PNGs.

    pip install jupyterlab playwright        # never `playwright install`: the system browser is used
    python tests/ui/lab_views.py --out /tmp/lab_views

It prints one line per check and exits non-zero when a check fails (a text node below 4.5:1, a live state never
rendered, a view that lost its structure untrusted).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SETUP = '''
import asyncio
import guidance_lite as gl
from guidance_lite.testing import ScriptedServer

class SlowMock(gl.models.Mock):
    """Mock replies, with a slow first token and a pause between chunks (a slow server, visibly)."""

    def __init__(self, replies, first_token=0.6, per_chunk=0.05):
        super().__init__(replies, chunk_size=6)
        self.first_token, self.per_chunk = first_token, per_chunk

    async def stream(self, request):
        await asyncio.sleep(self.first_token)
        async for item in super().stream(request):
            await asyncio.sleep(self.per_chunk)
            yield item

def get_weather(city: str, unit: str = "celsius") -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21, "unit": unit}

def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b
'''

WEATHER = '''
program = gl.Program("""
{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(10)~}}
  {{#assistant~}}{{gen 'answer' tools=tools tool_choice='auto'}}{{~/assistant}}
  {{~#if not callable(answer)}}{{break}}{{/if~}}
  {{#function~}}{{answer()}}{{~/function}}
{{~/each}}""")
model = SlowMock([
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_weather", "arguments": {"city": "Rome"}}]},
    "It is 21 °C in both Paris and Rome.",
])
result = program(question="Weather in Paris and Rome?", tools=[get_weather], model=model)
'''

CELLS = [
    SETUP,
    WEATHER,
    "result  # shown again in a later cell",
    "program",
    '''calc = gl.Program("""
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}{{gen 'answer' tools=[divide] max_rounds=2}}{{~/assistant}}""")
bad = gl.models.Mock([
    {"tool_calls": [{"name": "divide", "arguments": {"a": 1, "b": 0}},
                    {"name": "delete_everything", "arguments": {}},
                    {"name": "divide", "arguments": '{"a": 1, "b": '}]},
    "Sorry, I could not compute that.",
])
calc(question="What is 1/0? <script>alert(1)</script>", divide=divide, model=bad)''',
    '''chat = gl.Program("""
{{#system~}}You are a friendly assistant.{{~/system}}
{{#user~}}{{await 'message'}}{{~/user}}
{{#assistant~}}{{gen 'reply'}}{{~/assistant}}""", model=SlowMock("Hello there!", first_token=0.2))
turn = chat()''',
    'turn = turn(message="Hi!")',
    '''server = ScriptedServer().start()
server.push({"status": 400, "error_message": "This model's maximum context length is 8 tokens."})
failing = gl.Program("""{{#user~}}Hi{{~/user}}
{{#assistant~}}{{gen 'answer'}}{{~/assistant}}""", model=gl.models.OpenAI("scripted-model", base_url=server.base_url))
failing()''',
    """program(tools=[get_weather], model=model)  # forgot question=""",
    """gl.Program("{{#user}}Summarise {{text}}{{#if short}}briefly{{/user}}")""",
    '''capitals = gl.Program("""{{#user~}}Capital of {{country}}?{{~/user}}
{{#assistant~}}{{gen 'capital'}}{{~/assistant}}""", model=gl.models.Mock("Paris"))
results = capitals.map([{"country": "France"}] * 5, progress=True)''',
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_notebooks(work: Path, env: dict) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, work / "live.ipynb")
    saved_env = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(
            notebook, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(work)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    nbformat.write(notebook, work / "trusted.ipynb")
    # trust is by content: a notebook with other content (as any shared one) is untrusted
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("A shared notebook, opened untrusted."))
    nbformat.write(notebook, work / "untrusted.ipynb")
    subprocess.run(
        [sys.executable, "-m", "jupyter", "trust", str(work / "trusted.ipynb")],
        env=env,
        check=True,
        capture_output=True,
    )


def set_theme(settings: Path, theme: str) -> None:
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))
    notification = {"fetchNews": "false", "checkForUpdates": False}
    (folder / "notification.jupyterlab-settings").write_text(json.dumps(notification))
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))


CONTRAST_JS = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => { const a = top[3]; return [0,1,2].map(i => top[i]*a + under[i]*(1-a)).concat([1]); };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v/12.92 : Math.pow((v+0.055)/1.055, 2.4); };
    return 0.2126*f(c[0]) + 0.7152*f(c[1]) + 0.0722*f(c[2]); };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x,y)+0.05)/(Math.min(x,y)+0.05); };
  const background = (el) => { const chain = []; for (let e = el; e; e = e.parentElement) chain.push(e);
    let bg = [255,255,255,1]; for (const e of chain.reverse()) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) bg = over(c, bg); } return bg; };
  const opacity = (el) => { let o = 1;
    for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity); return o; };
  const out = [];
  for (const root of document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .gl-root')) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent.trim(); const el = node.parentElement;
      if (!text || !el || el.closest('style') || !el.offsetParent) continue;
      const bg = background(el); const fg = parse(getComputedStyle(el).color);
      const seen = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
      out.push({text: text.slice(0, 40), cls: el.className, ratio: Math.round(ratio(seen, bg) * 100) / 100});
    }
  }
  return out;
}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/lab_views", help="folder for the screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lab_views_") as tmp:
        work, home = Path(tmp) / "work", Path(tmp) / "home"
        work.mkdir()
        for sub in ("config", "data", "runtime", "ipython"):
            (home / sub).mkdir(parents=True)
        settings = home / "settings"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
        }
        env.pop("OPENAI_API_KEY", None)
        started = time.perf_counter()
        build_notebooks(work, env)
        print(f"executed the demo notebook with nbclient in {time.perf_counter() - started:.1f}s")
        set_theme(settings, "JupyterLab Light")
        port, token = free_port(), "lab-views-token"
        log = (out / "jupyterlab.log").open("w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                f"--port={port}",
                "--ip=127.0.0.1",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={work}",
                "--LabApp.expose_app_in_browser=True",
                "--allow-root",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                    break
                except OSError:
                    if server.poll() is not None:
                        raise RuntimeError(f"jupyter lab exited; see {out / 'jupyterlab.log'}") from None
                    time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch_persistent_context(
                    str(Path(tmp) / "chromium-profile"),
                    executable_path=CHROMIUM,
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1100, "height": 1400},
                )
                page = browser.new_page()
                failures += shoot_saved(page, base, token, "trusted", out, "light")
                failures += shoot_saved(page, base, token, "untrusted", out, "untrusted")
                set_theme(settings, "JupyterLab Dark")
                failures += shoot_saved(page, base, token, "trusted", out, "dark")
                set_theme(settings, "JupyterLab Light")
                failures += shoot_live(page, base, token, out)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
    for failure in failures:
        print("FAIL:", failure)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


def open_notebook(page, base: str, token: str, name: str) -> None:
    page.goto(f"{base}/lab/tree/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_timeout(2500)


def shoot_saved(page, base: str, token: str, name: str, out: Path, label: str) -> list[str]:
    failures: list[str] = []
    open_notebook(page, base, token, name)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    roots = panel.locator(".gl-root")
    count = roots.count()
    print(f"[{label}] {count} guidance_lite views")
    for index in range(count):
        if roots.nth(index).is_visible():
            roots.nth(index).screenshot(path=str(out / f"{label}_{index}.png"), timeout=10_000)
    outputs = panel.locator(".jp-OutputArea-output")
    for index in range(outputs.count()):
        text = outputs.nth(index).inner_text()
        if "Traceback" in text or "Error" in text:
            lines = text.count("\n") + 1
            print(f"[{label}] error output {index}: {lines} lines; first: {text.splitlines()[0][:100]!r}")
            if outputs.nth(index).is_visible():
                outputs.nth(index).screenshot(path=str(out / f"{label}_error_{index}.png"), timeout=10_000)
    page.screenshot(path=str(out / f"{label}_page.png"), full_page=True)
    styles = panel.locator(".gl-root style").count()
    print(f"[{label}] <style> blocks kept in the page: {styles} of {count}")
    if label == "untrusted" and styles:
        failures.append("untrusted: expected JupyterLab to strip the stylesheet")
    inline = panel.locator(".gl-root .gl-msg[style*='border-left']").count()
    print(f"[{label}] message boxes with their inline border: {inline}")
    if not inline:
        failures.append(f"{label}: inline styles were stripped")
    ratios = page.evaluate(CONTRAST_JS)
    low = [r for r in ratios if r["ratio"] < 4.5]
    (out / f"{label}_contrast.json").write_text(json.dumps(ratios, indent=1))
    worst = min((r["ratio"] for r in ratios), default=None)
    print(f"[{label}] {len(ratios)} text nodes, lowest contrast {worst}, {len(low)} below 4.5:1")
    for item in low[:40]:
        print(f"    {item['ratio']:5.2f}  {item['cls']!r:40} {item['text']!r}")
    if low:
        failures.append(f"{label}: {len(low)} text nodes below 4.5:1")
    return failures


OBSERVE_JS = """
() => {
  window.__glSamples = [];
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const record = () => {
    const cell = panel.querySelectorAll('.jp-Cell')[1];
    const root = cell && cell.querySelector('.gl-root');
    if (!root) return;
    const text = root.innerText;
    const last = window.__glSamples[window.__glSamples.length - 1];
    if (!last || last.text !== text) window.__glSamples.push({t: performance.now(), text: text, html: root.outerHTML});
  };
  new MutationObserver(record).observe(panel, {subtree: true, childList: true, characterData: true});
}
"""


def shoot_live(page, base: str, token: str, out: Path) -> list[str]:
    """Run the notebook in the browser; a MutationObserver records every distinct state of the weather cell's view,
    and each state is screenshotted afterwards (re-rendered from its recorded HTML)."""
    open_notebook(page, base, token, "live")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=30_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.evaluate(OBSERVE_JS)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        "window.__glSamples.length > 0 && !window.__glSamples[window.__glSamples.length - 1].text.includes('Running')",
        timeout=60_000,
    )
    page.wait_for_timeout(6000)  # the rest of the notebook
    samples = page.evaluate("window.__glSamples")
    (out / "live_samples.json").write_text(json.dumps([{"t": s["t"], "text": s["text"]} for s in samples], indent=1))
    start = samples[0]["t"]
    print(f"[live] {len(samples)} distinct states of the weather run:")
    for sample in samples:
        lines = [line for line in sample["text"].splitlines() if line.strip()]
        print(f"    +{(sample['t'] - start) / 1000:5.2f}s  {lines[0][:20]!r:24} ... {lines[-1][:70]!r}")
    failures = []
    first_output = next((i for i, s in enumerate(samples) if "get_weather" in s["text"]), len(samples))
    user_before = any("Weather in Paris and Rome?" in s["text"] for s in samples[:first_output])
    tools_before_answer = any(s["text"].count("← get_weather") == 2 and "It is 21" not in s["text"] for s in samples)
    streamed = [s for s in samples if "It is 21" in s["text"] and "Running" in s["text"]]
    print(
        f"[live] user message before the first model output: {user_before}; tool results before the answer: "
        f"{tools_before_answer}; states with the answer streaming: {len(streamed)}"
    )
    if not user_before:
        failures.append("live: the user message was not shown before the first model output")
    if not tools_before_answer:
        failures.append("live: the tool results were not shown before the answer")
    page.screenshot(path=str(out / "live_page.png"), full_page=True)
    for index, sample in enumerate(samples[:10]):
        page.set_content(f"<body data-jp-theme-light='true' style='margin:8px;width:640px'>{sample['html']}</body>")
        page.locator(".gl-root").screenshot(path=str(out / f"live_{index}.png"))
    return failures


if __name__ == "__main__":
    sys.exit(main())
