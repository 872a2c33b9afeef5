"""Test results: a subunit v2 stream parsed once, then summary, HTML, JUnit, and a database.

``stream`` parses, ``summary``/``junit``/``html`` render, ``db`` stores in the subunit2sql
schema, ``history`` answers questions across runs, ``phase`` is what ``dsvm run`` calls.
Nothing here runs external commands.
"""
