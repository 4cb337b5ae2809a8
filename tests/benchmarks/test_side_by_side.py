import argparse
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from modelpress.benchmarks.side_by_side import (
    ECHO,
    cpu_seconds,
    envs_by_label,
    namespace_view,
    parse_build,
    parse_env,
    servers_for,
    to_markdown,
)


def test_parse_build_needs_a_label_and_a_folder_with_serving(tmp_path):
    (tmp_path / "serving").mkdir()
    assert parse_build(f"before={tmp_path}") == ("before", tmp_path)
    for bad in (str(tmp_path), f"={tmp_path}", f"echo={tmp_path}", f"after={tmp_path / 'missing'}"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_build(bad)


def old_build(folder: Path) -> Path:
    """A build from before the namespace move: its server imports itself as ``serving``."""
    (folder / "serving").mkdir(parents=True)
    (folder / "serving" / "__main__.py").write_text("from serving.server import serve\n")
    return folder


def test_servers_are_the_echo_then_each_build_from_its_folder(tmp_path):
    servers = servers_for(Path("repo"), [("before", old_build(tmp_path)), ("after", Path("."))], threads=2)
    assert [s.label for s in servers] == [ECHO, "before", "after"]
    assert servers[1].cwd == tmp_path.resolve()
    assert servers[1].argv[-3:] == ["serving", "--repository", str(Path("repo").resolve())]
    assert servers[2].argv[-3:] == ["modelpress.serving", "--repository", str(Path("repo").resolve())]
    assert (servers[2].cwd / "modelpress" / "serving").resolve() == Path("serving").resolve()
    assert servers[2].env["MODELPRESS_INTRA_OP_THREADS"] == "2"


def test_a_namespaced_build_is_imported_from_its_own_folder(tmp_path):
    """The view puts the build's code ahead of this interpreter's editable install of the checkout."""
    build = tmp_path / "build"
    for folder in ("modelpress", "common", "serving"):
        shutil.copytree(folder, build / folder, ignore=shutil.ignore_patterns("__pycache__"))
    view = namespace_view(build, tmp_path / "view")
    found = subprocess.run([sys.executable, "-c", "import modelpress.serving.settings as s; print(s.__file__)"],
                           cwd=view, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(found).resolve() == (build / "serving" / "settings.py").resolve()


def test_env_settings_go_to_their_build_only(tmp_path):
    envs = [parse_env("b:MODELPRESS_INTRA_OP_THREADS=1"), parse_env("b:MODELPRESS_X=a=b")]
    extra = envs_by_label(envs, ["a", "b"])
    assert extra == {"b": {"MODELPRESS_INTRA_OP_THREADS": "1", "MODELPRESS_X": "a=b"}}
    servers = servers_for(Path("repo"), [("a", old_build(tmp_path)), ("b", tmp_path)], threads=2, extra_env=extra)
    assert servers[1].env["MODELPRESS_INTRA_OP_THREADS"] == "2"
    assert servers[2].env["MODELPRESS_INTRA_OP_THREADS"] == "1"
    assert servers[2].env["MODELPRESS_X"] == "a=b"


def test_env_needs_a_label_a_key_and_a_known_build():
    for bad in ("MODELPRESS_X=1", ":MODELPRESS_X=1", "b:MODELPRESS_X", "b:=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_env(bad)
    with pytest.raises(SystemExit, match="no --build is labelled 'c'"):
        envs_by_label([("c", "K", "V")], ["a", "b"])


def test_cpu_seconds_of_this_process_grows_with_work():
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


def test_cpu_seconds_of_one_thread_counts_only_that_thread():
    main = threading.get_native_id()
    idle = threading.Event()
    waiter = threading.Thread(target=idle.wait)
    waiter.start()
    try:
        before_main, before_waiter = cpu_seconds(os.getpid(), main), cpu_seconds(os.getpid(), waiter.native_id)
        sum(i * i for i in range(2_000_000))
        assert cpu_seconds(os.getpid(), main) > before_main
        assert cpu_seconds(os.getpid(), waiter.native_id) - before_waiter < 0.05  # it only waited
    finally:
        idle.set()
        waiter.join()


def test_markdown_has_ratios_to_the_echo_per_round():
    def row(rps: float, concurrency: int) -> dict:
        return {"concurrency": concurrency, "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us_per_request": 300.0}

    results = {ECHO: [row(1000, 32), row(2000, 32)], "after": [row(600, 32), row(1500, 32)]}
    text = to_markdown(results, [32])
    assert "| after | 600, 1,500 | 1.000, 1.000 | 2.00, 2.00 | 300, 300 | 60.0%, 75.0% (median 67.5%) |" in text
