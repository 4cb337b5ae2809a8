import typer


def register(app: typer.Typer) -> None:
    @app.command("version")
    def version() -> None:
        """Print the modelpress version."""
        from modelpress import __version__

        typer.echo(__version__)
