"""Vendor compliance: what Cinder's third-party CI rules ask of a job, proven from its evidence.

``evidence`` finds a finished job's files (collected logs, or the node's while the job runs);
``backends`` decides per Cinder backend whether it was exercised; ``inventory`` and ``lock``
find what a run left on the array and clean only that; ``signatures`` reduces service-log
errors to comparable signatures; ``checks`` grades the job rule by rule; ``comment`` renders
the Gerrit comment block in Zuul's shape. ``phase`` wires them into ``dsvm run``.
Nothing here decides an exit code except through the checks' verdicts.
"""
