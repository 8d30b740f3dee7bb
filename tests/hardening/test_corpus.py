"""Every corpus case, and the docs table generated from the corpus."""

from pathlib import Path

import pytest
from PIL import Image

from tests.hardening.corpus import CASES, Ctx, table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def good_digit(tmp_path_factory, mnist_test):
    path = tmp_path_factory.mktemp("good") / "digit7.png"
    Image.fromarray(mnist_test.images[0]).save(path)
    return path


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_corpus_case(case, tmp_path, trained_mnist, good_digit, capsys):
    case.run(Ctx(tmp_path, trained_mnist["mnist_cnn"][1], good_digit, capsys))


def test_docs_table_is_generated_from_the_corpus():
    docs = REPO / "docs" / "BAD_INPUTS.md"
    assert docs.read_text() == table(), "regenerate it: python -m tests.hardening.corpus > docs/BAD_INPUTS.md"
