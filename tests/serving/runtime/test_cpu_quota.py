"""The CPU quota of the process's cgroup, v2 and v1, from files laid out as the kernel shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpress.serving.runtime.cpu_quota import cpu_quota


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _proc(tmp_path: Path, text: str) -> Path:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(text)
    return proc


@pytest.mark.parametrize(("cpu_max", "want"), [("150000 100000\n", 1.5), ("max 100000\n", None), ("50000\n", 0.5)])
def test_cgroup_v2_quota_of_the_process_cgroup(tmp_path, cpu_max, want):
    root = tmp_path / "cgroup"
    _write(root / "kubepods" / "pod1" / "cpu.max", cpu_max)
    _write(root / "cpu.max", "max 100000\n")  # the host's root: not this process's limit
    assert cpu_quota(root, _proc(tmp_path, "0::/kubepods/pod1\n")) == want


def test_a_container_sees_its_cgroup_at_the_mount(tmp_path):
    """cgroup namespaces: /proc/self/cgroup says '/', and the container's own limit is at the mount's top."""
    root = tmp_path / "cgroup"
    _write(root / "cpu.max", "200000 100000\n")
    assert cpu_quota(root, _proc(tmp_path, "0::/\n")) == 2.0


def test_cgroup_v1_quota_with_joined_controllers(tmp_path):
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct" / "docker" / "abc"
    _write(folder / "cpu.cfs_quota_us", "100000\n")
    _write(folder / "cpu.cfs_period_us", "100000\n")
    proc = _proc(tmp_path, "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpu_quota(root, proc) == 1.0
    _write(folder / "cpu.cfs_quota_us", "-1\n")
    assert cpu_quota(root, proc) is None


def test_nothing_readable_means_no_quota(tmp_path):
    assert cpu_quota(tmp_path / "none", tmp_path / "no-proc-file") is None
    root = tmp_path / "cgroup"
    _write(root / "cpu.max", "garbage here\n")
    assert cpu_quota(root, _proc(tmp_path, "0::/\n")) is None


def test_available_cpus_are_the_affinity_lowered_to_the_quota():
    import os

    from modelpress.serving.runtime.cpu_quota import available_cpus

    mask = len(os.sched_getaffinity(0))
    assert available_cpus() == mask
    assert available_cpus(0.5) == 0.5
    assert available_cpus(mask + 10.0) == mask
