"""``python -m fer_exp [overrides]``: the same command as ``fer-exp`` (:mod:`fer_exp.cli.run`)."""

from fer_exp.cli.run import cli

if __name__ == "__main__":
    cli()
