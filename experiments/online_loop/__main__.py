"""``python -m experiments.online_loop``: the closed loop of simulated people, the live
service, the Redis buffer, the learner and guarded promotion (module doc of
experiments.online_loop.loop)."""

from __future__ import annotations

import tyro

from experiments.online_loop.loop import LoopArgs, main

if __name__ == "__main__":
    main(tyro.cli(LoopArgs))
