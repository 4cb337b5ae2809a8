"""kill -9 of an export in the middle of publishing: readers see the repository as it was, and the next
publish restores its exact bytes (the dead run's versions retracted, its staging folders gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from modelpress.export.api import export_checkpoint
from modelpress.export.repository import STAGING_PREFIX, recover_interrupted
from modelpress.serving.manifest import JOURNAL_PREFIX, list_models, list_versions, pending_versions, sha256_file

# The child exports the tiny digits MLP (variants fp32, fp16, int8: three versions in one run) and stops,
# printing PAUSED, right after the chosen step; the test then kills it with SIGKILL.
CHILD = """
import sys, time
from pathlib import Path
import modelpress.export.repository as publishing
from modelpress.export.api import export_checkpoint
from tests.export.tiny_checkpoints import digits_data

point, checkpoint, repository = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
calls = []

def pause_after(function, call):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(1)
        if len(calls) == call:
            print("PAUSED", flush=True)
            time.sleep(120)
        return result
    return wrapped

if point == "staging":          # the second variant's model copied into its staging folder, no manifest yet
    publishing.copy_model = pause_after(publishing.copy_model, 2)
elif point == "verify":         # every variant staged and verified, nothing renamed
    publishing.StagedVersion.verify = pause_after(publishing.StagedVersion.verify, 3)
elif point == "before-rename":  # digits v2 renamed into place, digits-fp16 v1 listed in the journal, not renamed
    publishing.PublishJournal.intend = pause_after(publishing.PublishJournal.intend, 2)
elif point == "between-commits":  # digits v2 and digits-fp16 v1 renamed into place, digits-int8 not yet
    publishing.StagedVersion.commit = pause_after(publishing.StagedVersion.commit, 2)
export_checkpoint(checkpoint, repository, "digits", data=digits_data()[0], progress=False)
print("DONE", flush=True)
"""

# Version folders the dead run had renamed into place (the next publish retracts them).
RENAMED = {"staging": 0, "verify": 0, "before-rename": 1, "between-commits": 2}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``, hidden ones included: sha256 for files, 'dir' for folders."""
    return {p.relative_to(root).as_posix(): (sha256_file(p) if p.is_file() else "dir") for p in sorted(root.rglob("*"))}


def published(root: Path) -> dict[str, dict[int, dict[str, str]]]:
    """What a reader (the server, compare, bench) sees: published versions and their files' sha256."""
    return {
        name: {
            v: {f.name: sha256_file(f) for f in (root / name / str(v)).iterdir()} for v in list_versions(root / name)
        }
        for name in list_models(root)
    }


def run_until_paused(point: str, checkpoint: Path, repository: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, point, str(checkpoint), str(repository)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    for _ in range(1800):  # bounded: 180 s
        if "PAUSED\n" in lines or proc.poll() is not None:
            break
        reader.join(timeout=0.1)
    if "PAUSED\n" not in lines:
        proc.kill()
        raise AssertionError(f"the export never reached {point}: {lines} {proc.communicate()[1][-2000:]}")
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("point", list(RENAMED))
def test_kill_9_mid_publish_leaves_the_repository_as_it_was(checkpoint_for, tmp_path, point):
    checkpoint, data = checkpoint_for("mlp")
    repository = tmp_path / "repository"
    export_checkpoint(checkpoint, repository, "digits", variants=["fp32"], data=data, progress=False)
    before, seen_before = snapshot(repository), published(repository)
    assert seen_before.keys() == {"digits"}

    proc = run_until_paused(point, checkpoint, repository)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # A reader right after the kill: the same versions with the same bytes, nothing of the dead run.
    assert published(repository) == seen_before
    leftovers = sorted(set(snapshot(repository)) - set(before))
    assert len([p for p in leftovers if p.startswith(JOURNAL_PREFIX)]) == 1
    pending = pending_versions(repository)
    assert len(pending) == RENAMED[point] + (point == "before-rename")  # listed before its rename
    for path in leftovers:  # everything else the dead run left is hidden, pending, or a folder holding those
        model, *rest = path.split("/")
        hidden = model.startswith(JOURNAL_PREFIX) or (rest and rest[0].startswith(STAGING_PREFIX))
        in_pending = bool(rest) and rest[0].isdigit() and (model, int(rest[0])) in pending
        assert hidden or in_pending or not rest, path

    # The next publish begins with the rollback; here called alone so the bytes can be compared.
    removed = recover_interrupted(repository)
    assert len(removed) == RENAMED[point]
    assert snapshot(repository) == before
    (again,) = export_checkpoint(checkpoint, repository, "digits", variants=["fp32"], data=data, progress=False)
    assert again.version == 2
    assert list_versions(repository / "digits") == [1, 2]


def test_a_live_run_is_not_rolled_back(tmp_path):
    """Another process's journal that is still locked: its versions stay pending and its staging is kept."""
    from modelpress.export.repository import PublishJournal

    repository = tmp_path / "repository"
    (repository / "m" / "1").mkdir(parents=True)
    (repository / "m" / f"{STAGING_PREFIX}abc").mkdir()
    journal = PublishJournal(repository)
    journal.intend("m", 1)
    assert list_versions(repository / "m") == []  # pending: not published
    code = (
        "import sys; from pathlib import Path; from modelpress.export.repository import recover_interrupted; "
        "print(len(recover_interrupted(Path(sys.argv[1]))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    other = subprocess.run(
        [sys.executable, "-c", code, str(repository)], env=env, capture_output=True, text=True, timeout=60
    )
    assert other.stdout.strip() == "0", other.stderr
    assert (repository / "m" / "1").is_dir()
    assert (repository / "m" / f"{STAGING_PREFIX}abc").is_dir()
    journal.finish()
    assert list_versions(repository / "m") == [1]
