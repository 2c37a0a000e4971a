"""A run's own log file, when it cannot use Hydra's: two runs started in one ``hydra.run.dir``
share Hydra's ``fer_exp.log``; the one moved to a sub-folder (:func:`fer_exp.runs.folder.claim_output_dir`)
writes its lines to a file of its own from then on, and uploads that one."""

from __future__ import annotations

import logging
from pathlib import Path

# own log file -> (its handler, the handlers of the shared file it stands in for)
_OWN_LOGS: dict[Path, tuple[logging.Handler, list[logging.Handler]]] = {}


def own_log_file(folder: Path, shared: Path) -> Path:
    """Send this process's log lines to ``folder/fer_exp.log`` instead of ``shared`` (Hydra's
    log file, which the run that holds Hydra's folder uploads as its own)."""
    path = (folder / "fer_exp.log").resolve()
    root = logging.getLogger()
    replaced = [
        h
        for h in root.handlers
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).resolve() == Path(shared).resolve()
    ]
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(replaced[0].level if replaced else logging.INFO)
    if replaced and replaced[0].formatter is not None:
        handler.setFormatter(replaced[0].formatter)  # the lines look like Hydra's log file's
    for h in replaced:
        root.removeHandler(h)
    root.addHandler(handler)
    _OWN_LOGS[path] = (handler, replaced)
    return path


def close_own_log(path: Path | None) -> None:
    """Undo :func:`own_log_file` (nothing for any other path)."""
    handler, replaced = _OWN_LOGS.pop(Path(path).resolve(), (None, [])) if path else (None, [])
    if handler is None:
        return
    root = logging.getLogger()
    root.removeHandler(handler)
    handler.close()
    for h in replaced:
        root.addHandler(h)
