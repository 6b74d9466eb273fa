import errno

import pytest
from lw_core.errors import cli_errors


@pytest.mark.parametrize(("code", "text"), [(errno.ENOSPC, "No space left on device"),
                                            (errno.EROFS, "Read-only file system")])
def test_a_refused_write_is_one_line(capsys, code, text):
    @cli_errors
    def main():
        raise OSError(code, text, "/runs/x/run.json")

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: cannot write /runs/x/run.json: {text}\n"


def test_other_os_errors_are_not_hidden():
    @cli_errors
    def main():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        main()
