"""Run ``schakel`` (normally ``schakel serve ...``) under cProfile and write the profile when
the process ends (SIGTERM stops ``serve`` gracefully, so the stats are written):

    python bench/profile_serve.py OUT.prof serve --data DIR --port PORT
    python -c 'import pstats; pstats.Stats("OUT.prof").sort_stats("cumulative").print_stats(40)'

cProfile sees the event loop's thread only (the store's writer and reader threads are not
profiled); that is the thread the benchmark's targets depend on.  Used by
``bench/bench_server.py --profile``; it changes nothing in the server.

With ``SCHAKEL_PROFILE_ON_SIGNAL=1`` profiling starts switched off: SIGUSR1 switches it on
and SIGUSR2 off again, so one phase of a run can be profiled on its own.  With
``SCHAKEL_PROFILE_TIMER=cpu`` the profile counts the loop thread's CPU time
(``time.thread_time``) instead of wall time: on a shared machine, time the loop was not
running (other processes, waiting in ``epoll``) then does not appear as its functions' time.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    from schakel.cli.main import main as cli
    if os.environ.get("SCHAKEL_PROFILE_TIMER") == "cpu":
        profile = cProfile.Profile(time.thread_time)
    else:
        profile = cProfile.Profile()
    if os.environ.get("SCHAKEL_PROFILE_ON_SIGNAL") == "1":
        signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
        signal.signal(signal.SIGUSR2, lambda *_: profile.disable())
    else:
        profile.enable()
    try:
        cli.main(args=args, prog_name="schakel", standalone_mode=False)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
