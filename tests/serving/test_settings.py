"""Settings from flags and MODELPRESS_* variables, and their one-line errors."""

from __future__ import annotations

import pytest

from modelpress.serving.settings import Settings


def test_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELPRESS_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("MODELPRESS_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("MODELPRESS_METRICS_BUCKETS", "0.01,0.1,1")
    monkeypatch.setenv("MODELPRESS_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MODELPRESS_REQUIRE_GPU", "true")
    s = Settings()
    assert s.repository == str(tmp_path)
    assert s.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert s.metrics_buckets == [0.01, 0.1, 1.0]
    assert s.max_batch_size == 16
    assert s.require_gpu is True
    assert (s.host, s.port, s.workers, s.max_queue_delay_us, s.max_queue_size) == ("127.0.0.1", 8000, 1, 500, 256)
    assert s.max_body_bytes == 64 * 2**20
    assert s.repository_api is False
    monkeypatch.setenv("MODELPRESS_PROVIDERS", '["CPUExecutionProvider"]')
    assert Settings().providers == ["CPUExecutionProvider"]


def test_settings_refuse_bad_values(tmp_path):
    with pytest.raises(ValueError, match="strictly increasing"):
        Settings(repository=tmp_path, metrics_buckets=[1.0, 0.5])
    with pytest.raises(ValueError, match="at least one execution provider"):
        Settings(repository=tmp_path, providers="")
    with pytest.raises(ValueError, match="max_batch_size"):
        Settings(repository=tmp_path, max_batch_size=0)


def test_load_settings_names_the_bad_variable(monkeypatch, tmp_path):
    from modelpress.serving.settings import SettingsError, load_settings

    monkeypatch.delenv("MODELPRESS_REPOSITORY", raising=False)
    with pytest.raises(SettingsError, match=r"setting 'repository' \(MODELPRESS_REPOSITORY\): Field required"):
        load_settings()
    monkeypatch.setenv("MODELPRESS_MAX_QUEUE_SIZE", "lots")
    with pytest.raises(SettingsError, match="MODELPRESS_MAX_QUEUE_SIZE"):
        load_settings(repository=tmp_path)


def test_the_server_shares_one_spinning_thread_pool_by_default(monkeypatch, tmp_path, thread_settings_unset):
    from modelpress.serving.settings import SettingsError, load_settings

    def pools(**env: str) -> tuple[bool, bool]:
        for name, value in env.items():
            monkeypatch.setenv(f"MODELPRESS_{name.upper()}", value)
        s = load_settings(repository=tmp_path)
        for name in env:
            monkeypatch.delenv(f"MODELPRESS_{name.upper()}")
        return s.uses_shared_thread_pool(), s.spins()

    assert pools() == (True, True)
    assert pools(allow_spinning="false") == (False, False)  # the old way, as an upgrade from it sets it
    assert pools(shared_thread_pool="false") == (False, False)  # per-model pools sleep unless told to spin
    assert pools(shared_thread_pool="false", allow_spinning="true") == (False, True)
    assert pools(shared_thread_pool="true", allow_spinning="true") == (True, True)
    quota_limited = Settings(repository=tmp_path)
    assert (quota_limited.uses_shared_thread_pool(1.5), quota_limited.spins(1.5)) == (False, False)
    monkeypatch.setenv("MODELPRESS_SHARED_THREAD_POOL", "true")
    monkeypatch.setenv("MODELPRESS_ALLOW_SPINNING", "false")
    with pytest.raises(SettingsError, match=r"allow_spinning=false needs shared_thread_pool=false"):
        load_settings(repository=tmp_path)


def test_an_empty_auth_variable_means_unset(monkeypatch, tmp_path):
    """`MODELPRESS_AUTH_TOKEN_FILE=` (a blank line of an env template) is no auth, not the path '.'."""
    monkeypatch.setenv("MODELPRESS_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("MODELPRESS_AUTH_TOKEN_FILE", "")
    monkeypatch.setenv("MODELPRESS_AUTH_TOKEN", "")
    settings = Settings()
    assert settings.auth_token_file is None
    assert settings.auth_token is None
    assert not settings.auth_enabled()
    monkeypatch.setenv("MODELPRESS_AUTH_TOKEN_FILE", str(tmp_path / "token"))
    assert Settings().auth_token_file == tmp_path / "token"


def test_a_blank_token_is_refused_not_unset(tmp_path):
    """Spaces are not "no auth": whoever wrote them meant a token, so the server refuses to start without one."""
    from modelpress.serving.auth import AuthConfigError, TokenSource

    settings = Settings(repository=tmp_path, auth_token="  ")
    assert settings.auth_enabled()
    with pytest.raises(AuthConfigError, match="is empty"):
        TokenSource.from_settings(settings)


@pytest.mark.parametrize(
    ("settings", "cpus", "joins", "expected"),
    [
        ({}, 2, True, 1),  # intra_op_threads 0: ORT's default, a run spans the CPUs; the next batch forms meanwhile
        ({}, 64, True, 1),
        ({}, 2, False, 2),  # requests one by one: every compute thread
        ({"intra_op_threads": 1}, 2, True, 2),  # two one-thread runs side by side
        ({"intra_op_threads": 1}, 8, True, 2),  # no more than compute_threads
        ({"intra_op_threads": 1, "compute_threads": 4}, 8, True, 4),
        ({"intra_op_threads": 2}, 2, True, 1),
        ({"intra_op_threads": 1}, 0.5, True, 1),  # a half-CPU quota still runs one
        ({"batches_in_flight": 2}, 2, True, 2),  # asked for: as asked
        ({"batches_in_flight": 1}, 2, False, 1),
        ({"batches_in_flight": 3}, 2, True, 2),  # but never more than the compute threads
    ],
)
def test_batches_in_flight_per_model_fit_the_cpus(tmp_path, settings, cpus, joins, expected):
    assert Settings(repository=tmp_path, **settings).model_batches_in_flight(cpus, joins) == expected


def test_batches_in_flight_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="batches_in_flight"):
        Settings(repository=tmp_path, batches_in_flight=0)
