# Runs one firmware.http_client call described by a JSON line and reports the result as one
# JSON line; imported by tests/test_http_client.py on CPython, run by the micropython binary
# (cwd = repo root) for the other target.
import json
import sys

from firmware import http_client
from firmware.compat import asyncio


async def run(a):
    seen = []

    def progress(n, total):
        seen.append([n, total])

    try:
        if a["op"] == "download":
            n = await http_client.download(
                a["url"], a["path"], cafile=a.get("cafile"), resume=a.get("resume", True),
                timeout_ms=a.get("timeout_ms", 5000), max_redirects=a.get("max_redirects", 5),
                progress=progress)
        else:
            n = await http_client.upload(
                a["url"], a["path"], cafile=a.get("cafile"), method=a.get("method", "PUT"),
                field=a.get("field", "file"), filename=a.get("filename"),
                timeout_ms=a.get("timeout_ms", 5000))
    except http_client.HttpError as e:
        return {"error": "HttpError", "msg": e.args[0], "status": e.args[1],
                "progress": seen[-1:], "calls": len(seen)}
    except Exception as e:
        return {"error": type(e).__name__, "msg": str(e)}
    return {"ok": n, "progress": seen[-1:], "calls": len(seen),
            "monotonic": all(seen[i][0] < seen[i + 1][0] for i in range(len(seen) - 1))}


def main():
    a = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(run(a))))


if __name__ == "__main__":
    main()
