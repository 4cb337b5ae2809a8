from modelpress.benchmarks.grpc_vs_rest import grpc_frame, to_markdown


def test_grpc_frame_is_uncompressed_and_length_prefixed():
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"") == b"\x00" * 5  # an empty message (ServerLiveRequest)


def step(protocol: str, round_: int, rps: float, loop_us: float) -> dict:
    return {"round": round_, "protocol": protocol, "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0,
            "cpu_us_per_req": 2 * loop_us, "loop_cpu_us_per_req": loop_us, "rows_per_batch": 1.5,
            "client_cpu_us_per_req": 30.0}  # fmt: skip


def test_markdown_has_the_ratios_and_the_loop_thread_cost_per_protocol():
    steps = [step("rest", 1, 4000, 150), step("grpc", 1, 2000, 400), step("grpc-live", 1, 6000, 140),
             step("grpc", 2, 1000, 500), step("rest", 2, 4000, 160), step("grpc-live", 2, 5000, 160)]  # fmt: skip
    text = to_markdown(steps, 32)
    assert "| 1 | grpc | 2000 | 1.00 | 2.00 | 800 | 400 | 1.5 | 30 |" in text
    assert "grpc / REST throughput per round: 0.50, 0.25 (median 0.38)" in text
    assert "rest 155, grpc 450, grpc-live 150" in text


def test_markdown_without_live_steps_names_only_the_protocols_run():
    text = to_markdown([step("rest", 1, 4000, 150), step("grpc", 1, 2000, 400)], 32)
    assert text.endswith("rest 150, grpc 400")


def test_markdown_gives_the_grpc_go_clients_ratio_beside_h2loads():
    steps = [step("rest", 1, 4000, 150), step("grpc", 1, 5000, 100), step("grpc-go", 1, 3000, 120)]
    text = to_markdown(steps, 32)
    assert "grpc / REST throughput per round: 1.25 (median 1.25)" in text
    assert "grpc-go / REST throughput per round: 0.75 (median 0.75)" in text
    assert text.endswith("rest 150, grpc 100, grpc-go 120")


def test_the_go_client_without_go_says_what_to_install(monkeypatch, tmp_path):
    import shutil

    import pytest

    from modelpress.benchmarks.grpc_vs_rest import GO_CLIENT_SOURCE, build_go_client

    assert GO_CLIENT_SOURCE.is_file()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install golang-go golang-google-grpc-dev"):
        build_go_client(tmp_path)
