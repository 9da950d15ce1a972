"""``python -m storymedia``: the same command line as the ``storymedia`` script."""

from storymedia.cli import main

if __name__ == "__main__":
    main()
