"""``python -m edge`` is the same as the ``gate-edge`` command."""

from edge.cli import main

if __name__ == "__main__":
    main()
