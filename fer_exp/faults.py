"""Failpoints for fault-injection tests: named places in a run where a test makes the process
stop, die or fail on purpose, to check what an interrupt at exactly that place leaves behind.

A run passes :func:`point` at each stage (``data_load``, ``epoch_start``, ``mid_epoch``,
``checkpoint_write``, ``final_evaluation``, ``artifact_upload``). It does nothing unless the
environment variable ``FER_EXP_FAULT`` names the point::

    FER_EXP_FAULT=final_evaluation:sigterm python -m fer_exp epochs=3

``<name>:<action>`` acts the first time the run passes the point; ``<name>@<n>:<action>`` the
n-th time (``mid_epoch@4``: the 4th batch); several rules are separated by commas. Actions:
``sigint``, ``sigterm`` and ``sigkill`` send that signal to the run's own process, ``sigstop``
stops it until a ``SIGCONT`` (the test acts meanwhile, e.g. stops the tracking server),
``raise`` raises :class:`InjectedFault`. ``tests/test_faults.py`` is the table of probes.

Without the variable a point costs one dictionary lookup: it can sit in a per-batch hook.

>>> os.environ[ENV] = "demo@2:raise"
>>> point("demo"); point("elsewhere")
>>> point("demo")
Traceback (most recent call last):
fer_exp.faults.InjectedFault: fault injected at demo (FER_EXP_FAULT=demo@2:raise)
>>> del os.environ[ENV]; point("demo")
"""

from __future__ import annotations

import os
import signal

ENV = "FER_EXP_FAULT"
SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL, "sigstop": signal.SIGSTOP}
ACTIONS = (*SIGNALS, "raise")

_passes: dict[str, int] = {}  # point name -> times passed in this process (counted only when a rule names it)


class InjectedFault(RuntimeError):
    """The error the ``raise`` action raises: an unexpected failure at a named point."""


def point(name: str) -> None:
    """Act as ``$FER_EXP_FAULT`` says when it names this point (see the module docstring)."""
    rules = os.environ.get(ENV)
    if rules is None:
        return
    for rule in rules.split(","):
        where, _, action = rule.strip().rpartition(":")
        point_name, _, nth = where.partition("@")
        if point_name != name:
            continue
        if action not in ACTIONS:
            raise ValueError(f"{ENV}={rules!r}: unknown action {action!r}; one of {', '.join(ACTIONS)}")
        _passes[rule] = passes = _passes.get(rule, 0) + 1
        if passes != int(nth or 1):
            continue
        if action == "raise":
            raise InjectedFault(f"fault injected at {name} ({ENV}={rules})")
        os.kill(os.getpid(), SIGNALS[action])
