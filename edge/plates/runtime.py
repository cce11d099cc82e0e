"""onnxruntime sessions for the detector and the recognizer, set up for a small shared box.

Measured on the 2-core gate box (docs/plate-reading.md): onnxruntime's worker threads spin
while waiting for work by default, which pays off on an idle many-core machine but, on two
cores shared with the daemon, the other camera process and the database, steals the CPU the
other thread needs — with spinning off the median recognizer run was ~45 % faster under load
and no slower idle. Graph optimisation ALL and sequential execution are set explicitly so a
change of onnxruntime's defaults cannot silently slow the lane down.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def make_session(path: Path, threads: int, *, spin: bool = False) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads, full graph optimisation, no spinning."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
