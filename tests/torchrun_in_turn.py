"""Several `bicyclegan` commands in turn in one torchrun launch, for the tests (test_distributed's
torchrun_in_turn): the start-up of torchrun and of each rank took most of a command's time.

Its argument: a JSON list of [port, argv] pairs. Each command makes a process group of its own, on its own
port, its store held by rank 0 (as under spawn_ranks) rather than torchrun's: a group made again on torchrun's
store would meet the keys the previous one left there. A group a command's error left open is ended after it,
as the process's exit would end it. Rank 0 writes "== command N" to stdout and stderr before command N, so that
each command's output can be told apart. Each rank writes its commands' exit codes to in_turn.<rank>.json (in
the working folder) and exits with the first nonzero one."""
import json
import os
import sys

import torch.distributed as dist

from bicyclegan.engine.cli import main

os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"
codes = []
for n, (port, argv) in enumerate(json.loads(sys.argv[1])):
    os.environ["MASTER_PORT"] = str(port)
    if os.environ["RANK"] == "0":
        for stream in (sys.stdout, sys.stderr):
            print(f"== command {n}", file=stream, flush=True)
    try:
        codes.append(main(argv))
    except SystemExit as e:  # the command line's refusal (argparse's)
        codes.append(e.code)
    if dist.is_initialized():
        dist.destroy_process_group()
with open(f"in_turn.{os.environ['RANK']}.json", "w") as f:
    json.dump(codes, f)
sys.exit(next((code for code in codes if code), 0))
