"""Training: TensorFlow set-up (:mod:`.setup`), the processor's abilities (:mod:`.hardware`),
compile and fit (:mod:`.fit`), learning-rate schedules (:mod:`.schedules`), resumable callbacks
(:mod:`.callbacks`) and the Keras objects checkpoints need (:mod:`.keras_objects`).

Nothing is imported here, so the config schema can read :mod:`.schedules` without TensorFlow.
"""
