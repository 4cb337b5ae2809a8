"""Text tests need the hf extra; the tiny BERT and corpus fixtures are in tests/conftest.py (built once)."""

import pytest

pytest.importorskip("transformers", reason="text models need the hf extra")
pytest.importorskip("tokenizers", reason="text models need the hf extra")
