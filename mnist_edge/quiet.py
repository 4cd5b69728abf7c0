"""Keep the native libraries' start-up chatter off the terminal.

TensorFlow prints its oneDNN and absl lines while it is imported (TF_CPP_MIN_LOG_LEVEL does not
reach them) and LiteRT announces its XNNPACK delegate when an interpreter is created; converters
print pages of MLIR. None of it is for the user, and it would bury the one-line errors the
command line promises. These helpers capture what native code writes to file descriptors 1 and 2
while they run, and hand it back so a failure can quote it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

_lock = threading.Lock()  # the descriptors are process-wide: one capture at a time


class Captured:
    """What was written while capturing; `text` is filled in when the block ends."""

    text: str = ""

    def tail(self, lines: int = 3) -> str:
        kept = [line.strip() for line in self.text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])


@contextlib.contextmanager
def captured_output():
    """Redirect fds 1 and 2 (Python and native writes alike) into a buffer for the block."""
    captured = Captured()
    with _lock:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                sink.seek(0)
                captured.text = sink.read().decode("utf-8", "replace")


def quiet_tensorflow_environment() -> None:
    """Nothing from TensorFlow's C++ logging after its import (a user may set TF_CPP_MIN_LOG_LEVEL
    lower): its "E" lines are notices such as tf.data's rewrite of the parallel map under op
    determinism, while real failures reach the user as Python exceptions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
