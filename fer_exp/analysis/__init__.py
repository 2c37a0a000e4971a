"""Analysis after training: evaluation (:mod:`.evaluate`), pictures (:mod:`.plots`) and the
comparison of runs (:mod:`.compare`)."""
