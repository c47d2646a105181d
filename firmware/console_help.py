# `help CMD` for the console's core commands (firmware/console_cmds.py); imported for the
# question and dropped, so the table takes no heap between questions. Other layers add
# theirs to Commands.syntax.
SYNTAX = {
    "help": "help [COMMAND]",
    "status": "status",
    "get": "get Component[inst]@EVSE[,CONN].Variable[inst]",
    "set": "set Component.Variable VALUE",
    "log": "log [N]",
    "trace": "trace on|off",
    "mem": "mem [gc | watch MS]",
    "stall": "stall [reset]",
    "modules": "modules",
    "reboot": "reboot",
    "quit": "quit",
}
