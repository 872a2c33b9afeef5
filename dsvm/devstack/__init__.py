"""devstack integration: ini editing, local.conf (meta-config), Cinder backends, stack.sh."""
