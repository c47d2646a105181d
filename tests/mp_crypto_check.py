# Runs the crypto core over vectors made by cryptography (see test_crypto_micropython.py)
# and prints what it computed as one JSON line: meant for the micropython binary, runs on
# CPython too.   micropython tests/mp_crypto_check.py <repo root> <vectors.json>
import binascii
import json
import sys

sys.path.insert(0, sys.argv[1])
from firmware import compat, ecdsa, rsa, sha512, x509  # noqa: E402


def h(b):
    return binascii.hexlify(b).decode()


def u(s):
    return binascii.unhexlify(s)


def fields(c):
    return {"subject": h(c.subject), "issuer": h(c.issuer), "serial": x509.serial_hex(c.serial),
            "not_before": c.not_before, "not_after": c.not_after, "ca": c.ca,
            "path_len": c.path_len, "key_usage": c.key_usage, "key_alg": c.key_alg,
            "curve": c.curve, "sig_alg": c.sig_alg, "cn": c.subject_cn(),
            "org": c.subject_org(), "key_bits": h(c.key_bits), "spki": h(c.spki),
            "tbs": h(c.tbs), "sig": h(c.sig)}


def outcome(fn, *args):
    try:
        r = fn(*args)
    except x509.Invalid as e:
        return "Invalid: %s" % e
    except Exception as e:      # reported, the CPython side fails the test on it
        return "CRASH %s: %s" % (type(e).__name__, e)
    return "ok" if r is None or r is True else repr(r)


def hostile(der):
    try:
        c = x509.Cert(der)
        c.subject_cn()
        c.subject_org()
        x509.hash_data(c, c, "SHA384")
    except x509.Invalid:
        return "Invalid"
    except Exception as e:
        return "CRASH %s: %s" % (type(e).__name__, e)
    return "ok"


def main():
    with open(sys.argv[2]) as f:
        v = json.load(f)
    out = {"certs": [], "chains": [], "ecdsa": [], "rsa": [], "sign": [], "keygen": [],
           "hostile": [], "sha": []}
    for item in v["certs"]:
        c = x509.Cert(u(item["der"]))
        issuer = x509.Cert(u(item["issuer"]))
        r = fields(c)
        r["hash_data"] = [x509.hash_data(c, issuer, a) for a in ("SHA256", "SHA384", "SHA512")]
        r["signed_by_issuer"] = outcome(x509.verify_signed_by, c, issuer)
        out["certs"].append(r)
    for ch in v["chains"]:
        out["chains"].append(outcome(
            x509.verify_chain, u(ch["leaf"]), [u(x) for x in ch["inters"]],
            [u(x) for x in ch["roots"]], ch["now"]))
    for e in v["ecdsa"]:
        out["ecdsa"].append(ecdsa.verify(u(e["pub"]), u(e["digest"]), u(e["sig"]), e["curve"]))
    for e in v["rsa"]:
        out["rsa"].append(rsa.verify(u(e["key_bits"]), e["hash"], u(e["digest"]), u(e["sig"])))
    for e in v["sign"]:
        extra = u(e["extra"]) if "extra" in e else None
        out["sign"].append(h(ecdsa.sign(int(e["d"]), u(e["digest"]), e["curve"], extra)))
    for _ in range(v["keygen"]):
        d, pub = ecdsa.generate_p256()
        out["keygen"].append([str(d), h(pub), h(ecdsa.spki(pub)), h(ecdsa.private_key_der(d))])
    for blob in v["hostile"]:
        out["hostile"].append(hostile(u(blob)))
    for data in v["sha"]:
        out["sha"].append([h(sha512.SHA512(u(data), 48).digest()),
                           h(sha512.SHA512(u(data), 64).digest())])
    out["pow"] = ["%x" % compat.pow_mod(int(b, 16), int(e, 16), int(m, 16))
                  for b, e, m in v["pow"]]
    print("RESULT " + json.dumps(out))


main()
