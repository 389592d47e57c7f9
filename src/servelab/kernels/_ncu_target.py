"""Child process for :mod:`.ncu`: launch one lab kernel's Triton provider three times."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import torch

    from .cases import build_case

    kernel, shape, dtype = argv[0], json.loads(argv[1]), argv[2]
    case = build_case(kernel, shape, dtype, "cuda", seed=0)
    outs = case.alloc("cuda")
    for _ in range(3):
        case.run("triton", outs)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
