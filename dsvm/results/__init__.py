"""Test results: a subunit v2 stream parsed once, then summary, HTML, JUnit, and a database.

``decoder`` is the one subunit v2 decoder (also behind ``tempest``'s live counts), ``stream``
builds the run from its events, ``summary``/``junit``/``html`` render, ``db`` stores in the
subunit2sql schema, ``history`` answers questions across runs, ``phase`` is what ``dsvm run``
calls. Nothing here runs external commands.
"""
