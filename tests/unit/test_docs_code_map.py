"""docs/code-map.md and docs/adding-a-resource.md send a newcomer to files that exist: every
question is answered with at least one path, and every path named is there."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"`((?:app|tests|migrations|tools|bench|docs)/[\w./-]*)`")
QUESTION = re.compile(r"^\d+\. \*\*(?P<question>…[^*]+)\*\*\n(?P<answer>(?: {3,}.*\n)+)", re.M)


def _existing(path: str) -> bool:
    return (ROOT / path).exists() or path.endswith("0008_customers.py")  # the recipe's new file


def test_code_map_asks_ten_questions_or_more_each_answered_with_a_file():
    text = (ROOT / "docs" / "code-map.md").read_text()
    answers = [m["answer"] for m in QUESTION.finditer(text)]
    assert len(answers) >= 10
    for answer in answers:
        assert PATH.search(answer), answer


@pytest.mark.parametrize("doc", ["code-map.md", "adding-a-resource.md"])
def test_every_file_the_newcomer_docs_name_exists(doc):
    text = (ROOT / "docs" / doc).read_text()
    named = PATH.findall(text)
    assert named
    recipe_new = {"app/customers.py", "app/routers/customers.py"}
    recipe_new |= {"tests/unit/test_customers.py", "tests/api/test_customers_api.py"}
    missing = [p for p in named if not _existing(p) and p not in recipe_new]
    assert missing == []
