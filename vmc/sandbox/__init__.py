"""Theano's ``theano.sandbox`` path, for the names programs import from it
(``vmc.sandbox.rng_mrg.MRG_RandomStreams``)."""
