import pytest


@pytest.fixture(scope="session")
def shared_compiledir(tmp_path_factory):
    """One compile cache for the probes that do not look at the cache itself,
    so that each kernel is compiled once per test session (and worker)."""
    return tmp_path_factory.mktemp("probe_compiledir")
