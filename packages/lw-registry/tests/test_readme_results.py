"""README.md's results section is what `lw-registry report --suite ops/plans/suite.toml --update README.md`
writes from the run records committed under results/records: regenerated here from those records and the
suite's plans (no runs root, no torch), it must be the same text."""

from pathlib import Path

import pytest
from lw_registry.report.publish import ARCHIVE_DIR, current_section, section_from

REPO = Path(__file__).resolve().parents[3]
COMMAND = "uv run lw-registry report --suite ops/plans/suite.toml --update README.md"


def test_readme_results_section_is_generated_from_the_committed_records():
    readme, suite, archive = REPO / "README.md", REPO / "ops" / "plans" / "suite.toml", REPO / ARCHIVE_DIR
    if not (readme.is_file() and suite.is_file()):
        pytest.skip("not in the lw repository")
    section = section_from([archive] if archive.is_dir() else [], suite=suite, base=REPO, update=readme,
                           archive=archive)
    assert COMMAND in section.text
    assert section.text.strip("\n") == current_section(readme), (
        f"README.md's results section differs from what its committed records give: run `{COMMAND}`")
