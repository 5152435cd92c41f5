"""The README's quick start, as written: its ```python snippet against the real server.

The snippet is taken from README.md itself (parsed, not copied here), so an edit there that
breaks it breaks this test. Only its address changes: the server listens on a free port
instead of 61613.
"""

import os
import subprocess
import sys

from markdown_blocks import fenced_blocks, only_block
from switchboard_proc import Server

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "README.md")
README_ADDRESS = '("127.0.0.1", 61613)'
SNIPPET_TIMEOUT = 30.0


def test_python_snippet_works_as_written(tmp_path):
    with open(README, encoding="utf-8") as f:
        snippet = only_block(f.read(), "python")
    assert snippet.count(README_ADDRESS) == 1, (
        f"the README's Python snippet no longer connects to {README_ADDRESS}:\n{snippet}"
    )
    server = Server()  # defaults, like `cargo run --release -p switchboard-server`
    try:
        host, port = server.stomp_host_port
        script = tmp_path / "readme_snippet.py"
        script.write_text(snippet.replace(README_ADDRESS, f'("{host}", {port})'), "utf-8")
        try:
            run = subprocess.run(
                [sys.executable, str(script)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=SNIPPET_TIMEOUT,
                cwd=tmp_path,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"the README snippet did not finish within {SNIPPET_TIMEOUT}s; "
                f"stdout: {e.stdout!r} stderr: {e.stderr!r}"
            ) from None
        report = f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
        assert run.returncode == 0, report
        # What the snippet's listener prints for the one message it gets back.
        assert "/topic/greetings hello" in run.stdout.splitlines(), report
    finally:
        logs = server.logs()
        code = server.stop()
    assert code == 0, f"server exited with {code} after SIGTERM:\n{logs}"


def test_fenced_blocks_follow_commonmark_fences():
    text = (
        "intro\n"
        "```python\nprint(1)\n```\n"
        "  ~~~~ html extra words\n  <p>\n  ```\n  not the end\n  ~~~~\n"
        "````sh\n```\ninner\n```\n````\n"
        "``` `odd\nnot a block\n"
        "    ```python\n    indented code, not a fence\n"
        "```\nunclosed runs to the end\n"
    )
    assert fenced_blocks(text) == [
        ("python", "print(1)\n"),
        ("html", "<p>\n```\nnot the end\n"),
        ("sh", "```\ninner\n```\n"),
        ("", "unclosed runs to the end\n"),
    ]
    assert only_block(text, "python") == "print(1)\n"
