"""`python -m tools diag PORT [COMMAND ...]`: talk to a running station over its serial
console. With a command (e.g. `status`, `log 20`, `get OCPPCommCtrlr.HeartbeatInterval`)
it prints the JSON reply and exits; without, it is an interactive prompt."""
import argparse
import json
import sys
import time


def open_port(port, baud=115200):
    try:
        import serial
    except ImportError:
        raise SystemExit("pyserial missing: pip install pyserial (it comes with mpremote)")
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.1)
    except (serial.SerialException, OSError, ValueError) as e:
        print("cannot open %s: %s (is the board plugged in, is the port right, or does "
              "another program hold it, e.g. mpremote or a terminal?)" % (port, e),
              file=sys.stderr)
        raise SystemExit(2)


NO_REPLY = ("no console reply from %s: the station does not seem to run. At the MicroPython "
            "REPL (>>>) start it with `import board.main` or reset the board; if it runs, "
            "check --baud")


def ask(ser, line, timeout=5.0, echo=None):
    """Send one command line; return the first JSON object line that comes back. Log lines
    and the REPL echo in between are passed to `echo` (or dropped)."""
    ser.reset_input_buffer()
    ser.write((line.strip() + "\r\n").encode())
    ser.flush()
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        chunk = ser.read(256)
        if not chunk:
            continue
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            text = raw.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = None
                if isinstance(obj, dict) and "ok" in obj:
                    return obj
            if text and echo:
                echo(text)
    raise TimeoutError("no JSON reply to %r within %.1f s" % (line, timeout))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools diag", description=__doc__)
    ap.add_argument("port", help="serial port or pyserial URL (e.g. /dev/ttyUSB0)")
    ap.add_argument("command", nargs="*", help="one console command; none = interactive")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args(argv)
    ser = open_port(a.port, a.baud)
    try:
        if a.command:
            try:
                r = ask(ser, " ".join(a.command), a.timeout)
            except TimeoutError:
                print(NO_REPLY % a.port, file=sys.stderr)
                return 1
            print(json.dumps(r, indent=2))
            return 0 if r.get("ok") else 1
        print("connected to %s; type console commands (help), Ctrl-D to leave" % a.port)
        while True:
            try:
                line = input("station> ")
            except EOFError:
                return 0
            if not line.strip():
                continue
            try:
                print(json.dumps(ask(ser, line, a.timeout, echo=lambda t: print("  | " + t)),
                                 indent=2))
            except TimeoutError:
                print(NO_REPLY % a.port, file=sys.stderr)
    finally:
        ser.close()
