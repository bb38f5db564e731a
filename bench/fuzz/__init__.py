"""Differential fuzzing of vmc: ``python -m bench.fuzz --graphs N --seed S`` (see __main__)."""
