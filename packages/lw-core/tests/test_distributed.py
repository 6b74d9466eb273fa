"""`gather_rows` in two real gloo processes with unequal shares (3 and 2 rows): the gathered batch is
every row in rank order, and each process's rows get the gradient a one-process run gives them once
DDP averages the processes' gradients."""

import json
import subprocess
import sys
import textwrap

import torch

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from lw_core.distributed import gather_rows, process_count

    def statistic(rows):  # pairwise across the batch, like the anti-collapse term
        return (rows @ rows.T).pow(2).mean()

    def worker(rank, port, out):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=2)
        rows = torch.arange(12.0).reshape(3, 4)[:3 - rank].clone() * (rank + 1) / 10
        rows.requires_grad_(True)
        batch = gather_rows(rows)
        statistic(batch).backward()
        with open(f"{out}/{rank}.json", "w") as f:
            json.dump({"world": process_count(), "batch": batch.tolist(), "grad": (rows.grad / 2).tolist()}, f)
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2)
''')


def _free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_gather_rows_joins_unequal_shares_and_their_gradients_match_one_process(tmp_path):
    script = tmp_path / "gather.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), _free_port(), str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]

    shares = [torch.arange(12.0).reshape(3, 4)[: 3 - r] * (r + 1) / 10 for r in (0, 1)]
    whole = torch.cat(shares).requires_grad_(True)
    (whole @ whole.T).pow(2).mean().backward()
    for r in (0, 1):
        assert ranks[r]["world"] == 2
        assert torch.allclose(torch.tensor(ranks[r]["batch"]), whole.detach())
    # DDP averages the processes' parameter gradients: each process's rows carry the whole-batch
    # term's gradient times the process count, so the average is the one-process gradient.
    assert torch.allclose(torch.tensor(ranks[0]["grad"]), whole.grad[:3])
    assert torch.allclose(torch.tensor(ranks[1]["grad"]), whole.grad[3:])


def test_gather_rows_is_the_identity_in_one_process():
    from lw_core.distributed import gather_rows, process_count

    rows = torch.randn(3, 2)
    assert process_count() == 1 and gather_rows(rows) is rows
