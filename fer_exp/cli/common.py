"""What every argparse command shares: a parser that shows the module's usage text, and one
way of ending — a problem of the user's is one ``error:`` line and exit status 2, never a
traceback; Ctrl-C is exit status 130."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from fer_exp.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parser(doc: str | None, command: str | None = None) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` starts with the command module's docstring, and whose
    usage line names the command as it is typed (``python -m fer_exp.<command>``), not the
    file argparse would see.

    >>> print(parser("Compare runs.", "compare").format_usage(), end="")
    usage: python -m fer_exp.compare [-h]
    """
    prog = f"python -m fer_exp.{command}" if command else None
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def run_command(body: Callable[[], int | None]) -> int:
    """Run a command's body; turn a UserError into ``error: <message>`` on stderr (exit 2) and
    Ctrl-C into exit 130.

    >>> def body(): raise UserError("data.root not found: /nope")
    >>> run_command(body)
    2
    """
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    try:
        return body() or EXIT_OK
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
