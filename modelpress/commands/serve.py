from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        repository: str = typer.Option(
            None,
            "--repository",
            help="Model repository: a folder or a URL such as s3://bucket/prefix (or MODELPRESS_REPOSITORY).",
        ),
        host: str = typer.Option(None, help="Address to listen on \\[default: 127.0.0.1]."),
        port: int = typer.Option(None, help="TCP port \\[default: 8000]."),
        workers: int = typer.Option(None, help="Server processes \\[default: 1]."),
        require_gpu: bool = typer.Option(False, "--require-gpu", help="Fail instead of falling back to CPU."),
        repository_api: bool = typer.Option(False, "--repository-api", help="Enable the load/unload API."),
        log_level: str = typer.Option(None, help="critical, error, warning, info, debug \\[default: info]."),
        auth_token_file: Path = typer.Option(
            None, "--auth-token-file", help="Require 'Authorization: Bearer <token>' with the token in this file."
        ),
        grpc_port: int = typer.Option(
            None, "--grpc-port", help="Also serve the Open Inference Protocol over gRPC on this port \\[default: off]."
        ),
        tls_cert: Path = typer.Option(None, "--tls-cert", help="PEM certificate chain: REST and gRPC over TLS."),
        tls_key: Path = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
        tls_client_ca: Path = typer.Option(
            None, "--tls-client-ca", help="PEM CA bundle: require client certificates signed by it (mutual TLS)."
        ),
        no_ui: bool = typer.Option(False, "--no-ui", help="Do not serve the page at /ui (MODELPRESS_UI=false)."),
        cache_dir: Path = typer.Option(
            None, "--cache-dir", help="Where a URL repository's versions are downloaded \\[default: user cache]."
        ),
        storage_options: list[str] = typer.Option(
            [], "--storage-option", help="key=value for the fsspec filesystem of a URL repository (repeatable)."
        ),
        poll_interval: float = typer.Option(
            None,
            "--poll-interval",
            min=0,
            help="Rescan the repository every SECONDS and roll versions \\[default: 0, off].",
        ),
        version_policy: list[str] = typer.Option(
            [], "--version-policy", help="MODEL=latest:N|all|specific:V1,V2; '*' for all models (repeatable)."
        ),
        strict_readiness: bool = typer.Option(
            False, "--strict-readiness", help="Ready only once every model serves (default: one failing is not enough)."
        ),
        wait_for_repository: float = typer.Option(
            None, "--wait-for-repository", min=0, help="Retry an unreachable repository for up to SECONDS at start."
        ),
        trt_engine_cache_dir: Path = typer.Option(
            None, "--trt-engine-cache-dir", help="TensorRT: keep built engines in this folder (a volume)."
        ),
        trt_fp16: bool = typer.Option(False, "--trt-fp16", help="TensorRT: allow fp16 layers."),
    ) -> None:
        """Serve a model repository over KServe V2 / V1 REST with Prometheus metrics (also MODELPRESS_* env)."""
        from modelpress.errors import user_errors
        from modelpress.serving.server import ServeError
        from modelpress.serving.server import serve as run
        from modelpress.serving.settings import SettingsError, load_settings
        from modelpress.serving.store import StoreError, parse_storage_options

        given = {
            "repository": repository, "host": host, "port": port, "workers": workers, "log_level": log_level,
            "require_gpu": require_gpu or None, "repository_api": repository_api or None,
            "auth_token_file": auth_token_file, "ui": False if no_ui else None,
            "grpc_port": grpc_port, "tls_cert": tls_cert, "tls_key": tls_key, "tls_client_ca": tls_client_ca,
            "cache_dir": cache_dir, "poll_interval": poll_interval, "strict_readiness": strict_readiness or None,
            "wait_for_repository": wait_for_repository,
            "version_policy": ";".join(version_policy) or None,
            "trt_engine_cache_dir": trt_engine_cache_dir, "trt_fp16": trt_fp16 or None,
        }  # fmt: skip
        with user_errors(SettingsError, ServeError, StoreError):
            if storage_options:
                given["storage_options"] = parse_storage_options(storage_options)
            run(load_settings(**{k: v for k, v in given.items() if v is not None}))
