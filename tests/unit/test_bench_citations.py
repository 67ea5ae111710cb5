"""Every code comment that cites bench/README.md names a section of it that exists, so a
reader sent there for a figure finds it (`bench/README.md "Routing"`)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The citation, then the quoted section name; a comment may wrap it over lines ("# ...").
CITATION = re.compile(r'bench/README\.md(?P<tail>[,:]?\s*(?:#\s*)?"(?P<section>[^"]+)")?')


def _sections() -> set[str]:
    text = (ROOT / "bench" / "README.md").read_text()
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def _sources() -> list[Path]:
    found = [ROOT / "run.sh", ROOT / "generate_webhook_signature.py", ROOT / "locustfile.py"]
    for folder in ("app", "bench", "ops", "tests", "tools", "migrations"):
        found += sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.sh"))
    return found


def citations(text: str) -> list[str | None]:
    """The section each citation names (None: it names none)."""
    return [
        re.sub(r"\s*#?\s+", " ", m.group("section")).strip() if m.group("section") else None
        for m in CITATION.finditer(text)
    ]


def test_the_citation_pattern_reads_a_wrapped_section_and_sees_a_missing_one():
    assert citations('(bench/README.md "Round trips\n# on PostgreSQL")') == [
        "Round trips on PostgreSQL"
    ]
    assert citations("the figures are in bench/README.md.") == [None]


def test_every_citation_of_bench_readme_names_a_section_that_exists():
    sections, wrong = _sections(), []
    for path in _sources():
        if path == Path(__file__):
            continue
        for section in citations(path.read_text()):
            if section not in sections:
                wrong.append(f"{path.relative_to(ROOT)}: {section!r}")
    assert wrong == [], "\n".join(wrong)
