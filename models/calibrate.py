"""`python -m models.calibrate`: entry point; the code is `models.training.calibrate`."""

from models.training.calibrate import main

if __name__ == "__main__":
    raise SystemExit(main())
