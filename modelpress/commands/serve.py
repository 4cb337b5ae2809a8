from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        repository: Path = typer.Option(
            None, "--repository", help="Model repository folder (or MODELPRESS_REPOSITORY)."
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

        given = {
            "repository": repository, "host": host, "port": port, "workers": workers, "log_level": log_level,
            "require_gpu": require_gpu or None, "repository_api": repository_api or None,
            "auth_token_file": auth_token_file,
            "trt_engine_cache_dir": trt_engine_cache_dir, "trt_fp16": trt_fp16 or None,
        }  # fmt: skip
        with user_errors(SettingsError, ServeError):
            run(load_settings(**{k: v for k, v in given.items() if v is not None}))
