"""The measurements behind the docs' claims: each module is one benchmark, run from the checkout as
``python -m benchmarks.<name>`` (for instance ``python -m benchmarks.comparison --quick``); each
prints its figures and can write them to a JSON file under ``docs/`` that the pages quote.

These modules are not part of the installed package (the wheel ships ``fer_exp`` only).
"""
