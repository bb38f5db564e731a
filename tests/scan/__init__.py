"""Tests of vmc.scan (a package, so its oracles import relatively)."""
