"""The local servers' logins (infra.credentials): each service's user may do what its code
needs and production grants it (k8s/), and nothing else.

- Redis: the ACL file keeps `default` behind the administrator's password, stores only
  SHA-256 hashes, and gives each service
  its own keys with the command rules k8s/README.md gives production's users;
- Kafka: each service's ACLs (from infra/topics.toml) cover exactly the topics its code
  writes and reads, the same as its KafkaUser, and its groups, by their prefix.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from infra import config, credentials
from infra.servers import kafka, redis
from infra.topics import declared
from services.kit.roster import SERVICES
from tests.unit.test_k8s_security import README, expected_acls, subscriptions


@pytest.fixture
def settings(tmp_path: Path):
    return replace(config.load({"ZENTRY_RUN_DIR": str(tmp_path)}), run_dir=tmp_path)


def test_logins_are_made_once_and_kept(settings):
    first = credentials.logins(settings)
    assert set(first) == {*SERVICES, credentials.GATEWAY}
    assert credentials.logins(settings) == first
    assert len({login.password for login in first.values()}) == len(first)
    env = credentials.service_env(settings, "feed")
    assert env["ZENTRY_REDIS_USERNAME"] == env["ZENTRY_KAFKA_USERNAME"] == "feed"
    assert env["ZENTRY_CONSUL_TOKEN"] == first["feed"].consul_token
    assert (settings.run_dir / "secrets" / "logins.json").stat().st_mode & 0o077 == 0


def test_the_redis_acl_file_gives_each_service_its_own_keys_and_no_password(settings):
    text = redis.acl_file(settings)
    lines = {line.split()[1]: line for line in text.splitlines()}
    # `default` replays the append-only file: it must not be off (see acl_file), but it takes
    # the administrator's password, never none.
    assert lines["default"] == lines[settings.redis.username].replace(
        f"user {settings.redis.username} ", "user default "
    )
    assert "nopass" not in text
    logins = credentials.logins(settings)
    for service, keys in credentials.REDIS_KEYS.items():
        assert f" ~{keys} " in lines[service]
        assert lines[service].endswith(redis.SERVICE_COMMANDS)
        assert logins[service].password not in text
    assert "sleep" not in lines  # it keeps nothing in Redis


def test_production_redis_users_get_the_same_rules():
    (rules,) = re.findall(r"^rules='([^']*)'$", README.read_text(), re.MULTILINE)
    assert rules == redis.SERVICE_COMMANDS
    for service, keys in credentials.REDIS_KEYS.items():
        assert f"user {service} on " in README.read_text()
        assert f"~{keys} $rules" in README.read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_may_use_the_topics_its_code_uses_as_in_production(service):
    local = kafka.acls(service, declared())
    topics = {
        (binding.name, binding.operation)
        for binding in local
        if binding.restype == ResourceType.TOPIC
    }
    wanted = {
        (name, {"Write": AclOperation.WRITE, "Read": AclOperation.READ}[op])
        for kind, name, op in expected_acls(service)
        if kind == "topic" and op in ("Write", "Read")
    }
    assert topics == wanted
    groups = [b for b in local if b.restype == ResourceType.GROUP]
    assert {b.resource_pattern_type for b in groups} == {ResourcePatternType.PREFIXED}
    assert {b.name for b in groups} == {f"{service}."}
    assert all(group.startswith(f"{service}.") for group in subscriptions(service))
    wanted_groups = {op for kind, _name, op in expected_acls(service) if kind == "group"}
    assert {b.operation.name.title() for b in groups} >= wanted_groups
    assert {b.principal for b in local} == {f"User:{service}"}


def test_the_services_sentinel_user_may_only_ask_where_the_primary_is():
    from chaos.redis_ha import READER, READER_RULES

    redis_yaml = (README.parent / "base" / "infra" / "redis.yaml").read_text()
    assert f"user {READER} on >${{SENTINEL_READER_PASSWORD}} {READER_RULES}" in redis_yaml
    rules = READER_RULES.split()
    assert rules[0] == "-@all"
    asked = {rule.split("|")[1] for rule in rules if rule.startswith("+sentinel|")}
    # What reads where the primary is; not SET, REMOVE, MONITOR, FAILOVER, RESET, CONFIG.
    assert asked <= {
        "get-master-addr-by-name",
        "masters",
        "master",
        "sentinels",
        "replicas",
        "slaves",
    }
    assert not any(rule.startswith("+@") for rule in rules[1:])
