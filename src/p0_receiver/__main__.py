"""``python -m p0_receiver``: the operator and developer CLI."""

from p0_receiver.entrypoints.cli import main

if __name__ == "__main__":
    main()
