"""MLflow tracking: the tracker API (:mod:`.tracker`), the offline journal (:mod:`.journal`),
the store and its client (:mod:`.store`), keeping secrets out (:mod:`.redact`), and delivering
journals later (:mod:`.sync`)."""

from fer_exp.tracking.tracker import Tracker, flatten, tracked_run

__all__ = ["Tracker", "flatten", "tracked_run"]
