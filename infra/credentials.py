"""Each service's own login to the local Redis, Kafka and Consul, as production gives one.

The local servers run with authentication on (infra.servers): Redis with ACL
users, Kafka with SASL/SCRAM and ACLs, Consul with ACLs that deny by default.
The administrator (services.kit.addresses.LOCAL_ADMIN) is what tools and tests
log in as; each service instance the mesh starts gets its own user instead,
named as the service, which may touch only that service's keys, topics, groups
and Consul name. The passwords and tokens are random, made once and kept in
`.run/secrets/logins.json` (git-ignored); `make infra-reset` makes new ones.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.config import Settings
from services.kit.roster import SERVICES

#: The endpoint feed reads the catalog (Consul only).
GATEWAY = "gateway"
#: Redis keys of each service: what its ACL user may touch (`~<pattern>`).
REDIS_KEYS = {
    "user": "user:*",
    "feed": "feed:*",
    "leaderboard": "lb:*",
    "analytics": "an:*",
}


@dataclass(frozen=True)
class Login:
    password: str
    #: Its Consul ACL token's secret (a UUID, as Consul wants).
    consul_token: str


def logins(settings: Settings) -> dict[str, Login]:
    """Every service's login (and the gateway's), made on first use; stable afterwards."""
    path = _path(settings)
    known = json.loads(path.read_text()) if path.exists() else {}
    wanted = {*SERVICES, GATEWAY}
    if set(known) >= wanted:
        return {name: Login(**known[name]) for name in wanted}
    made = {
        name: known.get(name) or asdict(Login(secrets.token_hex(16), str(uuid.uuid4())))
        for name in wanted
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(made, indent=2))
    os.chmod(temporary, 0o600)
    temporary.replace(path)
    return {name: Login(**made[name]) for name in wanted}


def service_env(settings: Settings, service: str) -> dict[str, str]:
    """The environment that logs an instance of `service` in as itself."""
    login = logins(settings)[service]
    return {
        "ZENTRY_REDIS_USERNAME": service,
        "ZENTRY_REDIS_PASSWORD": login.password,
        "ZENTRY_KAFKA_USERNAME": service,
        "ZENTRY_KAFKA_PASSWORD": login.password,
        "ZENTRY_CONSUL_TOKEN": login.consul_token,
    }


def gateway_env(settings: Settings) -> dict[str, str]:
    """The endpoint feed's: a Consul token that reads the catalog."""
    return {"ZENTRY_CONSUL_TOKEN": logins(settings)[GATEWAY].consul_token}


def _path(settings: Settings) -> Path:
    return settings.run_dir / "secrets" / "logins.json"
