# Certificate management block (OCPP 2.0.1 part 2, M03/M04/M05): InstallCertificate,
# GetInstalledCertificateIds and DeleteCertificate for the CA roots the station trusts
# (CSMSRootCertificate, ManufacturerRootCertificate, MORootCertificate, V2GRootCertificate).
#
# Loaded on demand (station.ON_DEMAND) and dropped after, with the crypto modules it pulled
# in unless another user still has them (BORROWED): it keeps nothing in RAM between
# requests; the certificates live in firmware.cert_store's files, which is also where the
# station reads the CSMS roots for TLS.
#
# A certificate is installed when it parses, is a CA (basicConstraints) allowed to sign
# certificates (keyUsage keyCertSign when present), is valid at the station clock and, when
# self-issued, verifies with its own key; otherwise Rejected / InvalidCertificate (M05.FR.07).
# Its issuer must be itself or a certificate already installed (issuerKeyHash needs the
# issuer's key). Hash data is SHA256 (GetInstalledCertificateIdsRequest asks for no algorithm).
#
# With SecurityCtrlr.AdditionalRootCertificateCheck true (installer setting) there is one CSMS
# root: a new one must be signed by the root in use (the installed one, or the installer's
# --cafile while none is installed) and replaces it; the replaced root stays as fallback until
# the station has connected with the new one (M05.FR.09..14, fallback in station.py).
from firmware import compat

# modules its requests import, borrowed (counted, not imported) while the block is loaded and
# given back when it is unloaded (compat.unload): the last of their users drops them
BORROWED = ("firmware.cert_store", "firmware.x509", "firmware.asn1", "firmware.sha512",
            "firmware.ecdsa", "firmware.rsa")
compat.borrow_all(BORROWED, __name__)

from firmware import cert_store, log
from firmware.rpc import status_info
from firmware.cert_store import CSMS

SEC = "SecurityCtrlr"
TYPES = ("CSMSRootCertificate", "ManufacturerRootCertificate", "MORootCertificate",
         "V2GRootCertificate")
DEFAULT_MAX_ENTRIES = 8
_CAFILE_BYTES = 12288  # an installer's CA bundle: a few roots


def _triple(h):
    return [h["issuerNameHash"].lower(), h["issuerKeyHash"].lower(),
            h["serialNumber"].lower().lstrip("0") or "0"]


def _hash_data(triple):
    return {"hashAlgorithm": "SHA256", "issuerNameHash": triple[0],
            "issuerKeyHash": triple[1], "serialNumber": triple[2]}


class Block:
    def __init__(self, station):
        self.st = station
        r = station.rpc
        r.register("InstallCertificate", self.install)
        r.register("GetInstalledCertificateIds", self.get_ids)
        r.register("DeleteCertificate", self.delete)

    # ---------------------------------------------------------------- helpers
    def _certs(self, idx, ctype=None, fallback=False):
        """[(entry, Cert)] of installed certificates of one type (primary or fallback), or of
        every type when ctype is None."""
        return list(self._each(idx, ctype, fallback))

    def _each(self, idx, ctype=None, fallback=False):
        # one certificate parsed at a time
        from firmware import x509
        for e in idx["certs"]:
            if ctype is not None and (e[1] != ctype or bool(e[3]) != fallback):
                continue
            text = cert_store.read_file(self.st.store, cert_store.cert_name(e[0]))
            try:
                c = x509.Cert(x509.pem_blocks(text or "")[0])
            except x509.Invalid as err:
                log.warn("certs", "installed certificate %d unreadable: %s" % (e[0], err))
                continue
            yield e, c

    def _cafile_roots(self):
        from firmware import x509
        p = self.st.cafile
        if not p:
            return []
        try:
            with open(p) as f:
                return [x509.Cert(d) for d in x509.pem_blocks(f.read(_CAFILE_BYTES))]
        except (OSError, x509.Invalid) as e:
            log.warn("certs", "--cafile unreadable: %s" % (e,))
            return []

    def _issuer(self, idx, cert):
        """The installed certificate that issued `cert`, or None."""
        from firmware import x509
        for _, c in self._each(idx):
            if c.subject == cert.issuer:
                try:
                    x509.verify_signed_by(cert, c)
                    return c
                except x509.Invalid:
                    pass
        return None

    def _max(self):
        return self.st.dm.max_limit(SEC, "CertificateEntries") or DEFAULT_MAX_ENTRIES

    def _changed(self, what):
        # A CA root is a security parameter: recorded in the security log (not critical)
        self.st.security_event("ReconfigurationOfSecurityParameters", what)

    # ---------------------------------------------------------------- M05
    def install(self, payload):
        from firmware import x509
        ctype = payload["certificateType"]
        try:
            ders = x509.pem_blocks(payload["certificate"])
            if len(ders) != 1:
                raise x509.Invalid("one certificate expected, got %d" % len(ders))
            cert = x509.Cert(ders[0])
            why = _unfit(cert, compat.now())
            if why:
                raise x509.Invalid(why)
        except x509.Invalid as e:
            log.warn("certs", "InstallCertificate %s rejected: %s" % (ctype, e))
            return status_info("Rejected", "InvalidCertificate", e)
        store = self.st.store
        try:
            idx = cert_store.load(store)
            check = ctype == CSMS and self.st.dm.get(SEC, "AdditionalRootCertificateCheck")
            signer = self._signer(idx, cert) if check else None
            if isinstance(signer, str):
                return status_info("Rejected", "InvalidCertificate", signer)
            if signer is not None:
                issuer = signer[1]
            elif cert.self_issued():
                try:
                    x509.verify_signed_by(cert, cert)
                except x509.Invalid as e:
                    return status_info("Rejected", "InvalidCertificate", "self-signature: %s" % (e,))
                issuer = cert
            else:
                issuer = self._issuer(idx, cert)
                if issuer is None:
                    return status_info("Rejected", "InvalidCertificate", "issuer not installed")
            triple = _triple(x509.hash_data(cert, issuer, "SHA256"))
            # M05.FR.17: the same certificate again replaces the installed one
            certs = [e for e in idx["certs"] if not (e[1] == ctype and e[2] == triple)]
            gone = [e[0] for e in idx["certs"] if e[1] == ctype and e[2] == triple]
            add = [(cert, ctype, triple, 0)]
            if signer is not None:
                # M05.FR.09/12: the signing root stays as the one fallback, other CSMS roots go
                keep = []
                for e in certs:
                    if e[1] != CSMS:
                        keep.append(e)
                    elif e is signer[0]:
                        keep.append([e[0], e[1], e[2], 1])
                    else:
                        gone.append(e[0])
                certs = keep
                if signer[0] is None:  # the --cafile root in use is kept in the store
                    c = signer[1]
                    add.append((c, CSMS, _triple(x509.hash_data(c, c, "SHA256")), 1))
            if len(certs) + len(add) > self._max():
                return status_info("Rejected", "OutOfStorage",
                               "CertificateEntries maxLimit %d reached" % self._max())
            n = idx.get("next", 1)
            for c, t, h, fb in add:
                text = cert_store.pem(c.der)
                if len(text) > cert_store.MAX_CERT_BYTES:
                    return status_info("Rejected", "TooLargeElement")
                cert_store.write_file(store, cert_store.cert_name(n), text)
                certs.append([n, t, h, fb])
                n += 1
            idx["certs"] = certs
            idx["next"] = n
            idx["gone"] = list(idx.get("gone") or []) + gone
            cert_store.save(store, idx)
        except OSError as e:
            log.warn("certs", "InstallCertificate failed: %s" % (e,))
            return status_info("Failed", "OutOfStorage", e)
        self._changed("%s installed, serial %s%s" % (
            ctype, triple[2], " (the old root is kept as fallback)" if signer else ""))
        return {"status": "Accepted"}

    def _signer(self, idx, cert):
        """AdditionalRootCertificateCheck (M05.FR.10/11): (index entry, or None for the
        --cafile root, Cert) of the CSMS root in use that signed `cert`; None when there is
        no root to check against or `cert` is that root again; a reason when it is refused."""
        from firmware import x509
        olds = self._certs(idx, CSMS) or [(None, c) for c in self._cafile_roots()]
        if not olds or [c for _, c in olds if c.der == cert.der]:
            return None
        for e, c in olds:
            try:
                x509.verify_signed_by(cert, c)
                return (e, c)
            except x509.Invalid:
                pass
        return "not signed by the CSMS root in use"

    # ---------------------------------------------------------------- M03
    def get_ids(self, payload):
        want = payload.get("certificateType") or TYPES
        chain = []
        for e in cert_store.load(self.st.store)["certs"]:
            if e[1] in want:
                chain.append({"certificateType": e[1], "certificateHashData": _hash_data(e[2])})
        # V2GCertificateChain (the station's own V2G certificates) is never installed here
        if not chain:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashDataChain": chain}

    # ---------------------------------------------------------------- M04
    def _match(self, idx, alg, want):
        from firmware import x509
        for e, c in self._each(idx):
            if x509.serial_hex(c.serial) != want[2]:
                continue
            issuer = c if c.self_issued() else self._issuer(idx, c)
            if issuer is not None and _triple(x509.hash_data(c, issuer, alg)) == want:
                return [e]
        return []

    def delete(self, payload):
        hd = payload["certificateHashData"]
        want = _triple(hd)
        store = self.st.store
        try:
            idx = cert_store.load(store)
            if hd["hashAlgorithm"] == "SHA256":
                hit = [e for e in idx["certs"] if e[2] == want]
            else:
                # M04.FR.07 has the CSMS use the SHA256 we report; other algorithms are
                # matched by hashing each installed certificate again
                hit = self._match(idx, hd["hashAlgorithm"], want)
            if not hit:
                # M04.FR.06: the station's own certificate (firmware.client_cert's) is never
                # deleted here
                if _station_certificate(store, hd):
                    return status_info("Failed", "Unspecified", "the Charging Station certificate")
                return {"status": "NotFound"}
            e = hit[0]
            rest = [x for x in idx["certs"] if x is not e]
            if e[1] == CSMS and not e[3] and not [x for x in rest if x[1] == CSMS and not x[3]]:
                fb = [x for x in rest if x[1] == CSMS]
                if fb:  # the fallback root becomes the root in use
                    rest = [[x[0], x[1], x[2], 0] if x in fb else x for x in rest]
                elif (self.st.dm.get(SEC, "SecurityProfile") or 0) >= 2:
                    # M04.FR.03: the last CSMS root of a TLS station would cut it off
                    return status_info("Failed", "Unspecified",
                                   "the last CSMSRootCertificate is in use")
            idx["certs"] = rest
            idx["gone"] = list(idx.get("gone") or []) + [e[0]]
            cert_store.save(store, idx)
        except OSError as err:
            log.warn("certs", "DeleteCertificate failed: %s" % (err,))
            return status_info("Failed", "InternalError", err)
        self._changed("%s deleted, serial %s" % (e[1], e[2][2]))
        return {"status": "Accepted"}


def _station_certificate(store, hash_data):
    """M04.FR.06: hash_data (CertificateHashDataType) names the Charging Station certificate.
    Matched on serialNumber and issuerNameHash (both from the leaf alone)."""
    pair = compat.call_lent("firmware.client_cert", "current", store)
    if pair is None:
        return False
    from firmware import x509
    try:
        with open(pair[0]) as f:
            cert = x509.Cert(x509.pem_blocks(f.read(x509.MAX_DER * 2))[0])
        mine = x509.hash_data(cert, cert, hash_data.get("hashAlgorithm") or "SHA256")
    except (OSError, ValueError):
        return False
    serial = (hash_data.get("serialNumber") or "").lower().lstrip("0") or "0"
    return mine["serialNumber"] == serial and \
        mine["issuerNameHash"] == (hash_data.get("issuerNameHash") or "").lower()


def _unfit(cert, now):
    """Why a CA root cannot be installed, or None."""
    from firmware import x509
    if not cert.ca:
        return "not a CA certificate"
    if cert.key_usage is not None and not cert.key_usage & x509.KU_KEY_CERT_SIGN:
        return "keyUsage lacks keyCertSign"
    if now < cert.not_before:
        return "not yet valid"
    if now > cert.not_after:
        return "expired"
    if cert.unknown_critical:
        return "unsupported critical extension " + cert.unknown_critical[0]
    return None
