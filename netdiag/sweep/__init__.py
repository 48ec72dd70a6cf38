"""``netdiag sweep``: which hosts are up.

options.py  options and which method serves which targets
run.py      targets in, results out: names, segments, engines side by side
inflight.py the in-flight table every engine shares, and the one retry decision
engine.py   the abstract engine; icmp.py arp.py ping.py tcp.py the four engines
"""

from netdiag.sweep.options import METHODS, Plan, SweepOptions, plan_kernel_method
from netdiag.sweep.run import run_sweep

__all__ = ["METHODS", "Plan", "SweepOptions", "plan_kernel_method", "run_sweep"]
