# Runs first at power-up: drive every configured relay output to "open" before anything
# else is imported. The relay driver needs a hardware pull to "open" as well, because the
# pin floats for the first milliseconds after reset.
try:
    import machine
    from board.config import relay_pins
    for _pin, _active_low in relay_pins():
        machine.Pin(_pin, machine.Pin.OUT, value=1 if _active_low else 0)
except Exception as _e:
    print("boot: could not open relays:", _e)
try:
    # then the installed firmware bundle's slot first on sys.path (board/slot.py)
    import board.slot
    board.slot.select()
except Exception as _e:
    print("boot: firmware slot not selected:", _e)
# main.py runs in these same globals: a function left here would keep board.config's
# globals alive after main.py unloads the module.
for _n in ("relay_pins", "_pin", "_active_low", "_e", "board"):
    if _n in globals():
        del globals()[_n]
del _n
