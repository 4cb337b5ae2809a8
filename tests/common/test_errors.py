import pytest
import typer

from modelpress.common.errors import UserError
from modelpress.errors import user_errors


def _bad_input_errors() -> list[type[Exception]]:
    from modelpress.export.compare.build import CompareError
    from modelpress.export.errors import AccuracyRefusedError, ExportError, VerificationError
    from modelpress.serving.server import ServeError
    from modelpress.serving.settings import SettingsError
    from modelpress.training.api import TrainingError
    from modelpress.training.checkpoint import CheckpointError
    from modelpress.training.data import DataError
    from modelpress.training.recipe import RecipeError
    from modelpress.training.text.corpus import CorpusError
    from modelpress.training.text.distill import DistillError
    from modelpress.training.text.source import TextModelError
    from modelpress.training.tune import TuneError

    return [CompareError, AccuracyRefusedError, ExportError, VerificationError, ServeError, SettingsError,
            TrainingError, CheckpointError, DataError, RecipeError, CorpusError, DistillError, TextModelError,
            TuneError]  # fmt: skip


def test_every_stage_s_bad_input_errors_are_user_errors():
    pytest.importorskip("transformers", reason="the text errors' modules need the hf extra")
    assert all(issubclass(kind, UserError) for kind in _bad_input_errors())


def test_the_cli_turns_any_user_error_into_one_line_and_exit_code_2(capsys):
    from modelpress.training.recipe import RecipeError

    with pytest.raises(typer.Exit) as info, user_errors():
        raise RecipeError("recipe r.yaml: unknown key 'colour'")
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "error: recipe r.yaml: unknown key 'colour'\n"
    with pytest.raises(ZeroDivisionError), user_errors():  # a bug keeps its traceback
        raise ZeroDivisionError
