#!/usr/bin/env bash
# Start PostgreSQL and MariaDB on 127.0.0.1 for the results database tests, idempotently
# (freshly installed Debian packages or servers already running), create a test database and
# user in each, and print the export lines the tests read:
#   eval "$(bash .ci/services.sh)"
# Everything human goes to stderr; stdout carries only the export lines.
set -euo pipefail

DB_NAME=${DSVM_TEST_DB_NAME:-dsvm_test}
DB_USER=${DSVM_TEST_DB_USER:-dsvm}
DB_PASS=${DSVM_TEST_DB_PASS:-dsvm-test-pw}
PG_PORT=${DSVM_TEST_PG_PORT:-5432}
MY_PORT=${DSVM_TEST_MY_PORT:-3306}

log() { echo "services.sh: $*" >&2; }

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 0.5
    done
}

as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
    if ! command -v pg_lsclusters >/dev/null; then
        log "PostgreSQL is not installed (apt-get install postgresql); skipping"; return 1
    fi
    local version cluster
    version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
    cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $2}')
    if [[ -z $version ]]; then
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
        cluster=main
        log "creating PostgreSQL cluster $version/$cluster"
        pg_createcluster "$version" "$cluster" -p "$PG_PORT" >&2 || return 1
    fi
    # Listen on loopback only (a conf.d drop-in: Debian's postgresql.conf includes conf.d).
    local dropin="/etc/postgresql/$version/$cluster/conf.d/dsvm-test.conf"
    if [[ ! -f $dropin ]]; then
        mkdir -p "$(dirname "$dropin")"
        echo "listen_addresses = '127.0.0.1'" > "$dropin"
    fi
    if ! pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" \
            '$1==v && $2==c {print $4}' | grep -q online; then
        log "starting PostgreSQL $version/$cluster"
        pg_ctlcluster "$version" "$cluster" start >&2 || return 1
    fi
    PG_PORT=$(pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" \
        '$1==v && $2==c {print $3}')
    wait_for 30 as_postgres psql -p "$PG_PORT" -Atc "select 1" || {
        log "PostgreSQL did not come up"; return 1; }
    as_postgres psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -q >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS';
  ELSE
    ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASS';
  END IF;
END \$\$;
SQL
    if ! as_postgres psql -p "$PG_PORT" -Atc \
            "select 1 from pg_database where datname='$DB_NAME'" | grep -q 1; then
        as_postgres createdb -p "$PG_PORT" -O "$DB_USER" "$DB_NAME" >&2
    fi
    echo "export DSVM_TEST_POSTGRES_URL=postgresql+psycopg://$DB_USER:$DB_PASS@127.0.0.1:$PG_PORT/$DB_NAME"
}

mysql_root() { mysql --protocol=socket -uroot "$@"; }

start_mariadb() {
    if ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null; then
        log "MariaDB is not installed (apt-get install mariadb-server); skipping"; return 1
    fi
    if ! mysql_root -e "select 1" >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "initialising MariaDB data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
        fi
        log "starting MariaDB on 127.0.0.1:$MY_PORT"
        # Started directly (not via init scripts) so it also works in containers without
        # systemd; mysqld_safe restarts it if it dies.
        (setsid mysqld_safe --bind-address=127.0.0.1 --port="$MY_PORT" \
            >/dev/null 2>&1 < /dev/null &)
        wait_for 60 mysql_root -e "select 1" || { log "MariaDB did not come up"; return 1; }
    fi
    MY_PORT=$(mysql_root -Ne "select @@port")
    mysql_root >&2 <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
    echo "export DSVM_TEST_MYSQL_URL=mysql+pymysql://$DB_USER:$DB_PASS@127.0.0.1:$MY_PORT/$DB_NAME?charset=utf8mb4"
}

start_postgres || log "PostgreSQL tests will be skipped"
start_mariadb || log "MariaDB tests will be skipped"
