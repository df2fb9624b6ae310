"""`python -m models.evaluate`: entry point; the code is `models.training.evaluate`."""

from models.training.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
