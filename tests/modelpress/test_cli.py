"""The command line as a user runs it: every verb documents itself, and bad input is one line and exit 2."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from modelpress.cli import build_app
from tests.export.compare.tiny_repository import gemm_classifier, publish

runner = CliRunner()


def modelpress(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelpress", *args], capture_output=True, text=True, timeout=120)


def test_every_verb_has_help():
    app = build_app()
    names = [c.name for c in app.registered_commands]
    assert {"compare", "bench", "loadtest", "version"} <= set(names)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "no-such-repository"], "not a model repository"),
        (["compare", ".", "--plot", "report.txt"], "expected a .png"),
        (["compare", ".", "--json", "no-such-folder/report.json"], "does not exist"),
        (["bench", "no-such-repository"], "not a model repository"),
        (["loadtest", "--url", "http://127.0.0.1:9", "--model", "m", "--concurrency", "1,x"], "comma-separated"),
        (["loadtest", "--url", "http://127.0.0.1:9", "--model", "m", "--payload", "xml"], "json or binary"),
        (["loadtest", "--url", "http://127.0.0.1:9", "--model", "m", "--client-cpus", "0,x"], "CPU numbers"),
        (["bench", ".", "--no-inprocess", "--server-cpus", "4096"], "not available"),
        (["serve", "--repository", ".", "--trt-engine-cache-dir", "README.md/engines"], "trt_engine_cache_dir"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = modelpress(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_compare_writes_every_format(tmp_path):
    repo = tmp_path / "repo"
    publish(repo, "tiny", gemm_classifier(8, 4, 3, seed=0), accuracy=0.9)
    out = tmp_path / "out"
    out.mkdir()
    files = ["--json", "r.json", "--csv", "r.csv", "--markdown", "r.md", "--plot", "r.png", "--html", "r.html"]
    paths = [f if f.startswith("--") else str(out / f) for f in files]
    result = modelpress("compare", str(repo), "--quick", "--threads", "1", *paths)
    assert result.returncode == 0, result.stderr
    assert "tiny" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.html", "r.json", "r.md", "r.png"]
    assert '"model":"tiny"' in (out / "r.html").read_text()  # the report's JSON, inline
