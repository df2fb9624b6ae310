"""`python -m models.results`: trains the experiment grid and writes docs/results.md
(`models.results.run`)."""

from models.results.run import main

if __name__ == "__main__":
    raise SystemExit(main())
