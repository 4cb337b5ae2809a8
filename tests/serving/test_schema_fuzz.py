"""Every endpoint of the OpenAPI schema fuzzed by schemathesis against a real uvicorn: never a 5xx.

Auth and the repository API are on, so the load/unload routes and the 401 path are exercised too; each case
is sent once with the token and once without. Bounded (a few examples per operation) and derandomized.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.serving.conftest import settings_for, uvicorn_server
from tests.serving.models import publish_classifier, publish_multi

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "modelpress-hypothesis")

TOKEN = "schema-fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOWN_VERSION = {"model_version": "1"}
EXAMPLES = 15  # per operation and mode: ~15 operations x 2 modes x 8 examples, each sent with and without the token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schema-fuzz-repo")
    publish_classifier(root)
    publish_multi(root)
    config = settings_for(root, auth_token=TOKEN, repository_api=True, request_timeout_s=10, log_level="warning")
    with uvicorn_server(config) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(server: str):
    spec = requests.get(f"{server}/openapi.json", headers=AUTH, timeout=10).json()
    return schemathesis.openapi.from_dict(spec)


def _fuzz(operation, mode: GenerationMode, server: str, seen: Counter, path: dict | None = None) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
    def run(case) -> None:
        with requests.Session() as session:
            authorized = case.call(base_url=server, session=session, headers=AUTH, timeout=15)
            case.validate_response(authorized, checks=[not_a_server_error])
            anonymous = case.call(base_url=server, session=session, timeout=15)
        assert anonymous.status_code in (200, 401), anonymous.text  # 200: health and metrics stay open
        if anonymous.status_code == 401:
            assert anonymous.json()["error"]
            assert anonymous.headers["www-authenticate"][0].startswith("Bearer")  # schemathesis: lists of values
        seen[authorized.status_code] += 1

    run()


@pytest.mark.slow
def test_no_endpoint_answers_5xx(api_schema, server):
    """Valid and invalid (negative) inputs for every operation, with and without the token."""
    seen: Counter = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, server, seen)
        names = {p.name for p in operation.iter_parameters() if p.location == "path"}
        if "model_name" in names:  # again on a served model, so bodies reach the decoder and the model
            for model in ("digits", "multi"):
                _fuzz(operation, GenerationMode.POSITIVE, server, seen, {"model_name": model} | KNOWN_VERSION)
        with contextlib.suppress(Unsatisfiable):  # an operation without parameters or body has no invalid input
            _fuzz(operation, GenerationMode.NEGATIVE, server, seen)
    print(f"schema fuzz: {sum(seen.values())} cases on {len(operations)} operations, statuses {sorted(seen.items())}")
    assert not [status for status in seen if status >= 500]
    assert seen[200] > 0  # valid cases reached the handlers and succeeded
    assert sum(n for status, n in seen.items() if 400 <= status < 500) > 0
    # The fuzz may have unloaded a model (a valid unload): loading both again makes the server ready.
    for model in ("digits", "multi"):
        loaded = requests.post(f"{server}/v2/repository/models/{model}/load", headers=AUTH, timeout=30)
        assert loaded.status_code == 200, loaded.text
    assert requests.get(f"{server}/v2/health/ready", timeout=10).status_code == 200
