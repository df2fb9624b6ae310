"""Personal data, in one place: where it is stored (`storage`), the consent that must come
before any capture of a person (`consent`), and how long it is kept (`retention`).

The dashboard and the calibration panel both use this package; it imports neither (only the
core of `realtime` and `models`), so no folder imports a folder that imports it back.
"""
