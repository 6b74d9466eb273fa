"""The playground page in a real browser (Debian's headless Chromium): it renders an answer, the message's
bytes beside the text's, and the stage timings. Skipped, with the reason, where Chromium is missing
(.ci/run installs it)."""

import re
import shutil
import subprocess
import urllib.parse

import pytest
from lw_serve import load_engine
from lw_serve.threaded import serve_in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_playground_renders_an_answer_in_headless_chromium(run_dir, tmp_path):
    engine = load_engine(run_dir, "pipeline", device="cpu")
    text = "a wonderful, charming film"
    with serve_in_thread(engine) as url:
        page = f"{url}/?text={urllib.parse.quote(text)}"
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
                              "--dump-dom", page], capture_output=True, text=True, timeout=180)
    dom = out.stdout
    assert out.returncode == 0, out.stderr[-2000:]
    answer = re.search(r'<span id="answer">([^<]*)</span>', dom)
    assert answer and answer.group(1) in ("negative", "positive"), dom[-3000:]
    assert f'<td id="message-bytes">{engine.message_bytes} bytes (int8)</td>' in dom
    assert f'<td id="text-bytes">{len(text.encode())} bytes</td>' in dom
    assert re.search(r"<td>receiver</td><td>[0-9.]+</td>", dom) and 'id="error"></p>' in dom
