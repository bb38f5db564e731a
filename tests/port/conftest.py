"""The ported programs run under both floatX settings, as Theano's did."""
import pytest

import vmc


@pytest.fixture(params=["float64", "float32"])
def floatX(request):
    with vmc.config.change(floatX=request.param):
        yield request.param
