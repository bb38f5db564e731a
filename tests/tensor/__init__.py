"""Tests of vmc.tensor (a package, so its helpers import relatively)."""
