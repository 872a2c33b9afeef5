"""SanCo FlashFleet: the fictional array of dsvm's docs/configure.md, as a Cinder driver.

The "array" is a directory (``flashfleet_array_dir``): ``array.json`` holds its name and login
password, ``pools/<pool>/`` holds volumes, snapshots and clones as sparse files, and
``switches.json`` (or ``$FLASHFLEET_SWITCHES``) makes it misbehave on demand. ``array`` is the
array's own API (no Cinder import), ``driver`` the Cinder driver on top of it, ``inventory``
the CLI that prints what is on the array as JSON.
"""
