"""Data: sources read into tables of decoded images (:mod:`.sources`, :mod:`.readers`,
:mod:`.folders`, :mod:`.cache`, :mod:`.synthetic`), the audit of what they hold (:mod:`.audit`),
class weights (:mod:`.class_weights`) and the two input pipelines that feed training
(:mod:`.tf_pipeline`, :mod:`.keras_pipeline`). Only the pipelines import TensorFlow."""
