"""Settings are read from the environment once, and a bad value names its variable."""

from __future__ import annotations

import pytest

from infra import config
from infra.errors import InfraError
from infra.install import java_major


def test_defaults_are_the_documented_loopback_addresses():
    settings = config.load({})
    assert settings.postgres.host == "127.0.0.1" and settings.postgres.port == 5432
    assert settings.redis.port == 6379
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.consul.http_url == "http://127.0.0.1:8500"
    assert settings.envoy.admin_url == "http://127.0.0.1:9901"
    assert settings.envoy.gateway_port == 8080
    assert settings.run_dir == config.REPO_DIR / ".run"


def test_each_address_can_be_overridden(tmp_path):
    settings = config.load(
        {
            "ZENTRY_HOST": "127.0.0.2",
            "ZENTRY_KAFKA_PORT": "19092",
            "ZENTRY_POSTGRES_HOST": "127.0.0.3",
            "ZENTRY_RUN_DIR": str(tmp_path),
        }
    )
    assert settings.kafka.bootstrap_servers == "127.0.0.2:19092"
    assert settings.postgres.host == "127.0.0.3"
    assert settings.redis.host == "127.0.0.2"
    assert settings.log_file("kafka") == tmp_path / "logs" / "kafka.log"


@pytest.mark.parametrize("value", ["abc", "0", "65536", "-1", "80.5"])
def test_a_bad_port_names_the_variable_and_the_value(value):
    with pytest.raises(InfraError, match=rf"ZENTRY_REDIS_PORT .* got '{value}'"):
        config.load({"ZENTRY_REDIS_PORT": value})


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_timeout_is_refused(value):
    with pytest.raises(InfraError, match="ZENTRY_READY_TIMEOUT"):
        config.load({"ZENTRY_READY_TIMEOUT": value})


def test_every_service_gets_its_own_database():
    names = config.load({}).postgres.databases
    assert names == (
        "zentry_user",
        "zentry_sleep",
        "zentry_feed",
        "zentry_leaderboard",
        "zentry_analytics",
    )


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("bash: java: command not found", 0),
    ],
)
def test_java_major_version_is_read_from_java_version(output, major):
    assert java_major(output) == major
