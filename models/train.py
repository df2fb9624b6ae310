"""`python -m models.train`: entry point; the code is `models.training.train`."""

from models.training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
