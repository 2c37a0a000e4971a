"""Augmentation: one config, two pipelines (Keras ImageDataGenerator and the fast tf.data one)."""
