"""`python -m vask` runs the command line."""

from vask.cli import main

if __name__ == "__main__":
    main()
