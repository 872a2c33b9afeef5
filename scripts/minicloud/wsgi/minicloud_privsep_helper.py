"""privsep-helper for the test cloud: the "privileged" side runs as the cloud's own user.

The cloud runs unprivileged, so there is no root to escalate to (oslo.privsep's own helper
goes through sudo and then fails to keep capabilities it never had). os-brick's and cinder's
privileged calls then run with the user's rights: reading /etc/iscsi/initiatorname.iscsi
fails, as on a host without iSCSI, and os-brick carries on without an initiator name.
"""

from oslo_privsep import daemon

daemon.Daemon._drop_privs = lambda self: None  # keep the user's own (absent) privileges
daemon.helper_main()
