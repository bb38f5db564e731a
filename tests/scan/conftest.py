"""Every scan test runs twice: with the Cython step loop (when built) and with
the Python reference loop, which defines the semantics."""
import pytest

import vmc.scan.thunk as scan_thunk


@pytest.fixture(autouse=True, params=["cython", "python"])
def scan_loop(request, monkeypatch):
    if request.param == "cython":
        if scan_thunk._scan_loop is None:
            pytest.skip("vmc/scan/_scan_loop.pyx is not built")
    else:
        monkeypatch.setattr(scan_thunk, "_scan_loop", None)
    return request.param
