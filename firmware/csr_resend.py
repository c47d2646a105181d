# Security block, A02.FR.17-20: resends of a SignCertificateRequest the CSMS accepted but
# never answered with a CertificateSigned. Imported by firmware.security for the resends and
# unloaded when they end: most of the time no CSR is pending.
from firmware import compat

BORROWED = ("firmware.client_cert",)  # given back when firmware.security unloads this module
compat.borrow_all(BORROWED, __name__)

from firmware import client_cert, log
from firmware.rpc import CallError


async def resend(st):
    """Resend the pending CSR after CertSigningWaitMinimum, doubling the wait
    CertSigningRepeatTimes times, then stop until the next TriggerMessage."""
    wait = st.dm.get("SecurityCtrlr", "CertSigningWaitMinimum") or 0
    times = st.dm.get("SecurityCtrlr", "CertSigningRepeatTimes") or 0
    for n in range(times + 1):
        if wait <= 0:
            break
        await compat.sleep_ms(int(wait * 1000) << n)
        try:
            with open(st.store.path(client_cert.CSR)) as f:
                csr = f.read(5500)
        except OSError:
            break  # certificate came or the request was given up
        log.info("cert", "no certificate after %d s: resending the CSR" % (wait << n))
        try:
            resp = await st.call("SignCertificate", {
                "csr": csr, "certificateType": "ChargingStationCertificate"})
        except (CallError, compat.TimeoutError) as e:
            log.warn("cert", "SignCertificate failed: %r" % (e,))
            continue
        if resp.get("status") != "Accepted":
            break
