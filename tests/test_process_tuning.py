"""tollway.process_tuning: glibc's malloc keeps freed request buffers instead of faulting them
in again.  Each check runs in a fresh interpreter: malloc's settings are process-wide, and
the page-fault counts must not depend on what the test process allocated before."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import Running
from tests.support.servers import gateway_server, make_settings
from tests.support.stub_openai import StubOpenAI
from tollway.process_tuning import MALLOC_KEEP_MAX, is_glibc, keep_freed_memory

# Allocate and free a 200 KB buffer per "request", as a relayed 200 KB prompt does, and print
# the minor page faults the loop took (getrusage: counted by the kernel, not timed).
_LOOP = """
import resource, sys
from tollway.process_tuning import keep_freed_memory
applied = keep_freed_memory(int(sys.argv[1]))


def request(i):
    body = b"%d" % i + b"x" * 200_000
    parsed = body.decode()
    del body, parsed

for i in range(5):
    request(i)  # warm-up: the heap grows to what a request needs
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(400):
    request(i)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: int) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _LOOP, str(keep)], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")
def test_kept_memory_stops_page_faults_per_request() -> None:
    applied, faults = _faults(MALLOC_KEEP_MAX)
    default_applied, default_faults = _faults(0)
    assert applied and not default_applied
    # glibc's defaults fault the buffers' pages in again and again (~50 pages each, 400 times);
    # kept, they are reused.
    assert default_faults > 4_000, default_faults
    assert faults < 100, faults


def test_zero_leaves_malloc_alone() -> None:
    assert keep_freed_memory(0) is False


def test_a_serving_gateway_applies_its_setting(running: Running, stub: tuple[StubOpenAI, str],
                                               database: str) -> None:
    """Gateway.start applies ``server.malloc_keep_bytes`` (default 32 MiB); 0 leaves malloc alone."""
    assert running.gateway.malloc_tuned is is_glibc()
    settings = make_settings(database, stub[1], extra={"server": {"key_cache_ttl_s": 0, "malloc_keep_bytes": 0}})
    assert settings.server.malloc_keep_bytes == 0
    with gateway_server(settings) as (_url, app):
        assert app.state.gateway.malloc_tuned is False
