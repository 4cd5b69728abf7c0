"""Stopping on SIGTERM and Ctrl+C without losing anything.

The CLI turns SIGTERM into `Terminated` (a KeyboardInterrupt) raised wherever the main thread is,
so that `finally` blocks clean up as for Ctrl+C. That is not safe inside every library: raised in
TensorFlow's or a converter's own Python code, the exception can be swallowed by the library (an
export went on and published after SIGTERM) or unwind through native frames (a segfault, seen in
CI). Code that runs such libraries and whose state is only files marks itself with
`exit_at_once(cleanup)`: a signal that arrives inside it runs every registered cleanup (last first),
prints the usual line and leaves with os._exit, never going back into the library. Code that owns
other resources a hard exit must not leak (the pipeline's server processes) registers them with
`on_exit_at_once(cleanup)`. A command whose user wants to know what a stop left behind says so
with `stopping_note(note)`: the line becomes "mnist-edge: terminated; the previous export is unchanged".
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import ExitStack, contextmanager

_cleanups: list = []  # run, last first, when the process leaves at once
_zones = 0  # how many exit_at_once blocks the main thread is in
_MESSAGES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}
_stderr = None  # a copy of fd 2 taken at install(): mnist_edge.quiet may have redirected fd 2
_notes: list = []  # callables saying what a stop now leaves behind, innermost last
_note_at_signal = ""  # what the innermost note said when the signal arrived (after the cleanups)
_deferring = 0  # how many deferred_stops blocks the main thread is in
_pending: list = []  # signals that arrived inside them


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that `finally` blocks clean up as for Ctrl+C."""


@contextmanager
def on_exit_at_once(cleanup):
    """Run `cleanup()` if the process leaves at once while this block is active."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


@contextmanager
def deferred_stops():
    """A SIGTERM or Ctrl+C that arrives inside this block takes effect when it ends: for a few
    statements that create something and record that they did (a staging folder), so that a stop
    never lands between the two and leaves it behind. (Blocking the signal would not do: numpy's
    threads would still take it, and Python runs the handler in the main thread all the same.)"""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            signum = _pending[-1]
            _pending.clear()
            _handle(signum, None)


@contextmanager
def exit_at_once(cleanup):
    """Inside this block a SIGTERM or Ctrl+C runs the cleanups and exits at once."""
    global _zones
    with on_exit_at_once(cleanup):
        _zones += 1
        try:
            yield
        finally:
            _zones -= 1


@contextmanager
def stopping_note(note):
    """While this block runs, the line a SIGTERM or Ctrl+C prints ends with `note()` (evaluated
    when the signal arrives, after the cleanups), e.g. "the previous export is unchanged"."""
    _notes.append(note)
    try:
        yield
    finally:
        _notes.remove(note)


def stopped_line(signum: int) -> str:
    """"mnist-edge: terminated" (or "interrupted"), with the note taken when the signal arrived."""
    return f"mnist-edge: {_MESSAGES[signum]}" + (f"; {_note_at_signal}" if _note_at_signal else "")


def _take_note() -> None:
    global _note_at_signal
    try:
        _note_at_signal = _notes[-1]() if _notes else ""
    except Exception:  # a note must never stop the stop
        _note_at_signal = ""


def _handle(signum, frame):
    if _deferring:
        _pending.append(signum)
        return
    if not _zones:
        _take_note()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    for cleanup in reversed(_cleanups):
        try:
            cleanup()
        except BaseException:  # one failed cleanup must not stop the others or the exit
            pass
    _take_note()
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    os.write(_stderr if _stderr is not None else 2, f"{stopped_line(signum)}\n".encode())
    os._exit(128 + signum)


def install() -> None:
    """Handle SIGTERM and Ctrl+C as described above (main thread only)."""
    global _stderr
    if _stderr is None:
        _stderr = os.dup(2)
    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)


def reinstall() -> None:
    """Put the handlers back after native code replaced them: the TFLite converter's LLVM may install
    its own for SIGTERM and SIGINT (then, while it runs, a signal ends the process with LLVM's own
    handling: no message, and the staging folder is removed by the next export instead). Measured
    with TensorFlow 2.21: the handler is the same before and after a conversion, and a SIGTERM
    inside the converter's native code ends the export with the usual line, its staging removed."""
    if _stderr is not None and threading.current_thread() is threading.main_thread():
        install()


def run_child(args: list[str], **kwargs):
    """subprocess.run(args, **kwargs), except that a process leaving at once kills the child first
    and waits for it: a converter child left running would go on writing into a folder the
    cleanup has just removed (a killed export left `.export-staging-*/.scratch/tmp*/out`)."""
    import subprocess

    input_text = kwargs.pop("input", None)
    if kwargs.pop("capture_output", False):
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with ExitStack() as stack:
        # A stop landing between the fork and the registration of stop_child would leave the
        # child running (seen in CI: the ORT converter re-created the removed staging folder).
        with deferred_stops():
            child = stack.enter_context(subprocess.Popen(args, **kwargs))

            def stop_child() -> None:
                child.kill()
                child.wait()

            # Terminated or Ctrl+C raised in this block: the child goes too, not on writing
            stack.push(lambda exc_type, exc, traceback: exc_type is not None and stop_child())
            stack.enter_context(on_exit_at_once(stop_child))
        out, err = child.communicate(input_text)
    return subprocess.CompletedProcess(args, child.returncode, out, err)
