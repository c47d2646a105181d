# Station certificate block (OCPP 2.0.1 part 2, A02/A03; security profile 3): a key pair made
# on the station, a PKCS#10 CSR signed on the station and sent in SignCertificateRequest, and
# CertificateSigned: the chain checked before it is used, then a reconnect with it.
#
# Loaded on demand (station.ON_DEMAND) for CertificateSigned, and borrowed for a CSR by the
# TriggerMessage SignChargingStationCertificate (remote_control) and by the A03 renewal;
# dropped with the crypto modules when idle, and it leaves no task behind. What outlives a
# request is on flash (firmware.client_cert); the waits (A02.FR.17 resend timer, A02.FR.08
# switch-over at notBefore, A03.FR.02 renewal a month before expiry) are in the security
# block, which is always loaded. On MicroPython the TLS client presents the leaf only
# (compat.tls_context): a CSMS must know the intermediates of the station's chain.
import hashlib

from firmware import compat

# borrowed (counted, not imported) while the block is loaded, given back when it is unloaded
# (compat.unload): shared with the certificates block, a firmware update's signature check and
# the TLS connect (client_cert)
BORROWED = ("firmware.x509", "firmware.asn1", "firmware.ecdsa", "firmware.sha512", "firmware.rsa",
            "firmware.client_cert")
compat.borrow_all(BORROWED, __name__)

from firmware import asn1, client_cert, log, x509
from firmware.rpc import CallError, Offline

SEC = "SecurityCtrlr"
CS_CERT = "ChargingStationCertificate"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
MAX_CA_BYTES = 16384  # the roots the chain is checked against, read from one file


def build_csr(d, pub, org, cn):
    """DER PKCS#10 CertificationRequest (RFC 2986) for the P-256 key (d, pub), signed with
    ECDSA-SHA256 by d, without attributes."""
    from firmware import ecdsa
    info = asn1.seq(asn1.integer(0), x509.make_name(cn=cn, org=org or None), ecdsa.spki(pub),
                    asn1.context(0, b""))
    sig = ecdsa.sign(d, hashlib.sha256(info).digest())
    return asn1.seq(info, asn1.seq(asn1.oid(OID_ECDSA_SHA256)), asn1.bit_string(sig))


def _rejected(reason, info):
    return {"status": "Rejected", "statusInfo": {"reasonCode": reason, "additionalInfo": info[:512]}}


class Block:
    def __init__(self, station):
        self.st = station
        station.rpc.register("CertificateSigned", self.certificate_signed)

    # ---------------------------------------------------------------- A02 steps 3-5
    async def request(self):
        """A new key pair (A02.FR.02), its CSR in a SignCertificateRequest (A02.FR.03).
        The key is on flash before the CSR leaves, so a certificate that comes back after a
        reboot still finds it."""
        from firmware import ecdsa
        st = self.st
        store = st.store
        d, pub = ecdsa.generate_p256()
        await compat.sleep_ms(0)  # key generation and signing each hold the CPU for a while
        idx = client_cert.load(store)
        g = idx["next"]
        client_cert.write(store, client_cert.key_name(g),
                          x509.pem(ecdsa.private_key_der(d, "P-256", pub), "EC PRIVATE KEY"))
        csr = x509.pem(build_csr(d, pub, st.dm.get(SEC, "OrganizationName"), st.identity),
                       "CERTIFICATE REQUEST")
        d = None
        client_cert.write(store, client_cert.CSR, csr)
        old = idx.get("pending")
        idx["next"], idx["pending"], idx["asked"] = g + 1, g, compat.now()
        client_cert.save(store, idx, (old,))
        log.info("cert", "new key pair %d, sending its CSR" % g)
        st.emit("csr_new")  # a running resend timer is for the old CSR
        try:
            resp = await st.call("SignCertificate", {"csr": csr, "certificateType": CS_CERT})
        except (CallError, Offline, compat.TimeoutError) as e:
            log.warn("cert", "SignCertificate failed: %r" % (e,))
            return
        if resp.get("status") == "Accepted":
            st.emit("csr_accepted")  # A02.FR.17: resend if no certificate comes
        else:
            log.warn("cert", "the CSMS rejected the CSR")

    # ---------------------------------------------------------------- A02 steps 9-11
    def certificate_signed(self, payload):
        st = self.st
        ctype = payload.get("certificateType")
        if ctype is not None and ctype != CS_CERT:
            return _rejected("InvalidCertificate", "%s is not supported" % ctype)
        chain = payload.get("certificateChain") or ""
        limit = st.dm.get(SEC, "MaxCertificateChainSize")
        if limit and len(chain) > limit:  # A02.FR.16
            return self._invalid("TooLargeElement", "chain of %d characters, %d allowed" % (
                len(chain), limit))
        idx = client_cert.load(st.store)
        g = idx.get("pending")
        try:
            certs = self._check(chain, g)
        except (ValueError, OSError) as e:  # x509.Invalid, asn1.DerError, an unreadable key
            return self._invalid("InvalidCertificate", str(e))
        text = "".join([x509.pem(c.der) for c in certs])  # re-encoded: no request text on flash
        try:
            client_cert.write(st.store, client_cert.cert_name(g), text)
            leaf = certs[0]
            old = idx.get("old")
            idx["old"], idx["cur"], idx["pending"] = idx.get("cur"), g, None
            idx["from"], idx["until"] = leaf.not_before, leaf.not_after
            client_cert.save(st.store, idx, (old,))
            st.store.remove(client_cert.CSR)
        except OSError as e:
            log.exc("cert", "cannot store the station certificate", e)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "OutOfStorage"}}
        log.info("cert", "station certificate accepted: CN=%s issuer %s, valid %s to %s" % (
            leaf.subject_cn(), leaf.issuer_cn(), compat.iso8601(leaf.not_before),
            compat.iso8601(leaf.not_after)))
        st.emit("csr_done")
        st.security_event("ReconfigurationOfSecurityParameters", "new ChargingStationCertificate")
        # A02.FR.08: a new connection with it as soon as it is valid; the security block
        # waits for that, so no task here keeps this module (and the crypto core) in RAM
        st.emit("cert_installed", leaf.not_before)
        return {"status": "Accepted"}

    def _invalid(self, reason, why):
        # A02.FR.07 / A03.FR.07: discarded, a security event; A02.FR.20: no resend timer
        log.warn("cert", "CertificateSigned rejected: %s" % why)
        self.st.emit("csr_done")
        self.st.security_event("InvalidChargingStationCertificate", why)
        return _rejected(reason, why)

    def _check(self, chain, g):
        """The parsed chain (leaf first) when it is fit for use (A02.FR.06), else Invalid."""
        st = self.st
        if g is None or not st.store.exists(client_cert.key_name(g)):
            raise x509.Invalid("no certificate was requested (no pending key)")
        certs = [x509.Cert(der) for der in x509.pem_blocks(chain)]
        leaf = certs[0]
        if leaf.key_alg != "ec" or leaf.curve != "P-256" or leaf.key_bits != self._pending_pub(g):
            raise x509.Invalid("certificate is not for the station's pending key")
        if leaf.subject_cn() != st.identity:  # A00.FR.511
            raise x509.Invalid("certificate CN %r is not the station identity" % (leaf.subject_cn(),))
        if leaf.ca:
            raise x509.Invalid("certificate is a CA certificate")
        if leaf.key_usage is not None and not leaf.key_usage & x509.KU_DIGITAL_SIGNATURE:
            raise x509.Invalid("certificate keyUsage lacks digitalSignature")
        # A02.FR.08: one that becomes valid later is checked for that time and used from then
        x509.verify_chain(leaf, certs[1:], self._roots(), max(compat.now(), leaf.not_before))
        return certs

    def _pending_pub(self, g):
        """The public point of pending key g, from its ECPrivateKey's [1] publicKey."""
        with open(self.st.store.path(client_cert.key_name(g))) as f:
            der = x509.pem_blocks(f.read(2048), "EC PRIVATE KEY")[0]
        r = asn1.Reader(der).enter()
        r.unsigned(1)
        r.next(asn1.OCTET_STRING)
        r.optional(asn1.ctx(0))
        s, e = r.enter(asn1.ctx(1)).bit_string()
        return der[s:e]

    def _roots(self):
        """The CSO hierarchy's roots: the installed CSMS root certificates, else --cafile."""
        path = self.st.ca_file()
        if path is None:
            raise x509.Invalid("no CSMS root certificate to check the chain against")
        with open(path) as f:
            text = f.read(MAX_CA_BYTES)
        return [x509.Cert(der) for der in x509.pem_blocks(text)]
