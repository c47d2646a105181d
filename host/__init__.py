"""CPython side: simulated board, simulator CLI, demo CSMS (host.sim also runs on micropython)."""


def missing_package(e, command):
    """The message for a host tool started by a Python that lacks the dev packages;
    `command` is what follows `python -m` (e.g. "host.csms", "tools bench")."""
    return ("`python -m %s` needs the package %r, which `make setup` installs into .venv: run "
            "`make setup`, then `.venv/bin/python -m %s ...` (or activate .venv first)"
            % (command, getattr(e, "name", None) or str(e), command))
