# Defaults for the dsvm-node element (see README.rst).
export DIB_DSVM_PROFILE=${DIB_DSVM_PROFILE:-base}
export DIB_DSVM_GIT_BASE=${DIB_DSVM_GIT_BASE:-https://opendev.org}
export DIB_DSVM_PREPARE_ARGS=${DIB_DSVM_PREPARE_ARGS:-}
