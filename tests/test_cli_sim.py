# host.sim's command line: bad input gets one readable line on stderr and exit code 2, never a
# traceback or a station that retries forever (issue #16 item 2). Both runtimes.
import os
import subprocess

import pytest

from tests.harness import interpreter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_sim(target, args, tmp_path):
    p = subprocess.run(interpreter(target) + ["-m", "host.sim"] + args, cwd=ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1:9000/ocpp", "not a ws:// or wss:// URL"),
    ("ws://127.0.0.1:99999/ocpp", "bad port"),
    ("ws://127.0.0.1:abc/ocpp", "bad port"),
    ("ws:///ocpp", "no host"),
])
def test_bad_csms_url_exits_2_with_the_reason(target, tmp_path, url, why):
    data = tmp_path / "d"
    rc, out, err = run_sim(target, ["--csms", url, "--data-dir", str(data)], tmp_path)
    assert rc == 2, (rc, out, err)
    assert "--csms" in err and why in err, err
    assert "Traceback" not in err
    # refused before a station existed: nothing queued (no StartupOfTheDevice per attempt)
    assert not data.exists()


def test_unusable_data_dir_exits_2_with_the_reason(target, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for d in (str(blocker / "data"), "/proc/no-such-dir/data"):
        rc, out, err = run_sim(target, ["--csms", "ws://127.0.0.1:9/ocpp", "--data-dir", d],
                               tmp_path)
        assert rc == 2, (d, rc, err)
        assert "cannot use --data-dir %s" % d in err and "Traceback" not in err, err


def test_wss_url_against_a_plain_server_says_it_may_not_speak_tls(target, csms, pki, tmp_path):
    # a ws:// CSMS behind a wss:// URL: a readable reason, not only ConnectionResetError
    from tests.harness import StationProc
    url = csms.csms.url().replace("ws://", "wss://")
    st = StationProc(target, url, "TLSPLAIN", str(tmp_path / "d"), args=["--cafile", pki["ca"]])
    try:
        s = st.wait_status(lambda s: s.get("last_error"), 20, "a connect error")
        assert "does the server speak TLS" in s["last_error"], s["last_error"]
    finally:
        st.quit()
