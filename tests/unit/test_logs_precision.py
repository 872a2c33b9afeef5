"""Precision of log redaction on the real option names of the services a job runs.

Ground truth is dsvm/data/secret_options.json (oslo.config's ``secret=True`` options of nova,
cinder, keystone, glance, neutron, placement, keystonemiddleware and the oslo libraries,
generated from their 2026.1 packages). Every secret option, in each group that defines it,
is masked in its config file and wherever a service log or devstack's xtrace quotes its
value; every plain option whose name looks secret (``max_token_size``, ``rbd_secret_uuid``,
``service_token_roles``, ...) is left alone in both places.
"""

from __future__ import annotations

import pytest

from dsvm.logs.redact import ConfigScan, Redactor, harvest
from dsvm.secrets import table

TABLE = table()
SECRET = sorted((name, group) for name, groups in TABLE["secret"].items() for group in groups)
PLAIN = sorted((name, group) for name, groups in TABLE["plain_lookalikes"].items()
               for group in groups)
# values plain options of these names really hold, which logs quote everywhere
PLAIN_VALUES = ["8192", "service", "1800", "true", "keystone.auth.plugins.password.Password",
                "457eb676-33da-42ec-9a8c-9293d545c337", "/etc/ssl/private/key.pem",
                "plain-value-kept-001"]


def _section(group: str) -> str:
    return "DEFAULT" if group == "default" else group


def test_the_table_covers_what_the_issue_names() -> None:
    names = set(TABLE["secret"])
    assert {"swift_store_key", "s3_store_access_key", "metadata_encryption_key",
            "backup_swift_key", "backup_s3_store_access_key", "zadara_access_key",
            "backend_argument", "fixed_key", "memcache_secret_key", "transport_url",
            "connection", "san_password", "admin_token", "password"} <= names
    plain = set(TABLE["plain_lookalikes"])
    assert {"max_token_size", "token_cache_time", "auth_type", "service_token_roles",
            "rbd_secret_uuid"} <= plain
    assert not names & plain
    packages = TABLE["packages"]
    assert {"nova", "cinder", "keystone", "glance", "keystonemiddleware", "oslo.messaging",
            "oslo.db"} <= set(packages)


@pytest.mark.parametrize("name, group", SECRET)
def test_secret_option_masked_in_its_file_and_where_logs_quote_it(name: str,
                                                                  group: str) -> None:
    value = f"Sv-{abs(hash((name, group))) % 10**8:08d}-x"
    if name in ("transport_url", "connection", "slave_connection", "asyncio_connection",
                "asyncio_slave_connection", "backend_url"):
        secret = value
        value = f"mysql+pymysql://user:{secret}@10.0.0.5/db"
    else:
        secret = value
    conf = f"[{_section(group)}]\n{name} = {value}\n"
    found = harvest(conf, name="svc.conf")
    assert [v for _, v in found] == [secret], conf
    r = Redactor.of([v for _, v in found])
    out, _ = r.redact(conf.encode(), ConfigScan(r.options, "svc.conf"))
    assert secret.encode() not in out, conf
    log = (f"2026-01-01 12:00:00.000 123 DEBUG oslo_service.service [-] "
           f"{group}.{name} = {value} log_opt_values\n"
           f"+ lib/svc:configure:12 : iniset /etc/svc/svc.conf {_section(group)} {name} "
           f"{value}\n")
    masked, n = r.redact(log.encode())
    assert secret.encode() not in masked and n >= 2, log


@pytest.mark.parametrize("name, group", PLAIN)
def test_plain_option_named_like_a_secret_is_left_alone(name: str, group: str) -> None:
    for value in PLAIN_VALUES:
        conf = f"[{_section(group)}]\n{name} = {value}\n"
        assert harvest(conf, name="svc.conf") == [], conf
        r = Redactor()
        assert r.redact(conf.encode(), ConfigScan(r.options, "svc.conf")) == \
            (conf.encode(), 0), conf
        log = (f"2026-01-01 12:00:00.000 123 DEBUG oslo_service.service [-] "
               f"{group}.{name} = {value} log_opt_values\n"
               f'{{"{name}": "{value}", "{group}:{name}": "rule:admin"}}\n')
        assert r.redact(log.encode()) == (log.encode(), 0), log
