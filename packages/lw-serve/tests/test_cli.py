"""`lw-serve` command-line mistakes are one `error:` line and exit 2, before anything is loaded."""

import pytest
from lw_serve.cli import main, split_role


def test_the_role_word_is_optional():
    assert split_role(["runs/x", "--port", "1"]) == ("pipeline", ["runs/x", "--port", "1"])
    assert split_role(["receiver", "runs/x"]) == ("receiver", ["runs/x"])


@pytest.mark.parametrize(("argv", "message"), [
    ([], "error: lw-serve: give a RUN_DIR (see lw-serve --help)"),
    (["/no/such/run"], "error: no bridge checkpoint at /no/such/run (expected bridge_config.json there or in "
                       "/no/such/run/bridge)"),
    (["sender", "/no/such/run", "--max-batch", "0"], "error: max_batch must be >= 1, got 0"),
    (["x", "--max-queue", "4", "--max-batch", "8"], "error: max_queue (4) must hold at least one full batch (8)"),
    (["x", "--port", "70000"], "error: port must be 0..65535, got 70000"),
    (["x", "--receiver-backend", "tgi"], "error: lw-serve: argument --receiver-backend: invalid choice: 'tgi'"),
    (["x", "--gguf-precision", "q2"], "error: lw-serve: argument --gguf-precision: invalid choice: 'q2'"),
])
def test_a_bad_command_line_is_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith(message) and "\n" not in err


def test_a_wrong_wire_format_is_one_line(run_dir, capsys):
    with pytest.raises(SystemExit):
        main([str(run_dir), "--wire-formats", "int3", "--device", "cpu"])
    assert capsys.readouterr().err.strip() == "error: unknown wire format 'int3'; known: fp32, fp16, int8, int6, int4"
