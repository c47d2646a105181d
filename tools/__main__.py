"""python -m tools <command> [args]: one of COMMANDS below; `python -m tools <command> --help`."""
import importlib
import sys

COMMANDS = {
    "build": ("tools.build", "compile firmware/ + board/ to dist/ (.mpy, sizes, manifest, romfs)"),
    "deploy": ("tools.deploy", "copy dist/ and a config to a board with mpremote"),
    "flash": ("tools.flash", "erase + write a MicroPython image you supply, with esptool"),
    "diag": ("tools.diag", "serial console client for a running station"),
    "bench": ("tools.bench", "footprint and performance figures"),
    "bench-fleet": ("tools.bench_fleet", "many simulated stations in one process: memory, boot storm, CALLs/s"),
    "bench-smart": ("tools.bench_smart", "smart charging under micropython: composite schedule time, heap, code size"),
    "cutpoints": ("tools.cutpoints", "power cut before every flash operation of a full script"),
    "gen-schemas": ("tools.gen_schemas", "regenerate the compact OCPP schema table"),
    "sign": ("tools.sign", "build a signed firmware bundle for UpdateFirmware (L01)"),
    "coverage": ("tools.coverage", "Part 6 test cases of a profile that have a test (--missing)"),
}


def usage(out=None):
    out = out or sys.stdout
    print("usage: python -m tools <command> [args]\n\ncommands:", file=out)
    for name, (_, text) in COMMANDS.items():
        print("  %-12s %s" % (name, text), file=out)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        usage()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print("unknown command %r\n" % name, file=sys.stderr)
        usage(sys.stderr)
        return 2
    modname = COMMANDS[name][0]
    try:
        mod = importlib.import_module(modname)
    except ImportError as e:
        if getattr(e, "name", None) == modname:
            print("`%s` is not available in this checkout (%s is missing)" % (name, modname),
                  file=sys.stderr)
            return 2
        from host import missing_package
        print(missing_package(e, "tools " + name), file=sys.stderr)
        return 2
    rest = argv[1:]
    if ("-h" in rest or "--help" in rest) and not _parses_own_args(mod):
        # Tools that read sys.argv by hand would otherwise run (a 10-minute bench) on --help.
        print((mod.__doc__ or COMMANDS[name][1]).strip())
        return 0
    return mod.main(rest) or 0


def _parses_own_args(mod):
    return hasattr(mod, "argparse")


if __name__ == "__main__":
    sys.exit(main())
