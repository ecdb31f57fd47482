"""One settings object for the whole facility.

Values come from `COMMONLAB_*` environment variables, then from an optional TOML file named by
`COMMONLAB_CONFIG`, then from the embedded defaults (SQLite, local executor, local store, all
under `$COMMONLAB_HOME`, default `./.commonlab`). A bad value stops start-up with one line
that names the setting.
"""

from __future__ import annotations

import json
import os
import string
import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from commonlab.errors import ConfigError, field_and_reason

__all__ = ["OidcProvider", "Settings", "load_settings", "parse_networks"]

ENV_PREFIX = "COMMONLAB_"


class OidcProvider(BaseModel):
    """An OpenID Connect provider people sign in with (identity/federation.py): a
    university's, a federation's proxy, or ORCID (kind "orcid": linking proves an ORCID iD).

    In TOML, one `[[commonlab.oidc_providers]]` table each; in the environment,
    COMMONLAB_OIDC_PROVIDERS holds the same list as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="in the portal's URLs")
    display_name: str = Field(min_length=1, max_length=100, description="'Sign in with ...'")
    kind: Literal["oidc", "orcid"] = "oidc"
    issuer: str = Field(description="exactly as the provider's discovery document says it")
    client_id: str = Field(min_length=1, max_length=300)
    client_secret: str = Field(default="", max_length=1000, description="empty: a public client")
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    name_claim: str = "name"
    email_claim: str = "email"
    affiliation_claim: str = Field(
        default="schac_home_organization",
        description="the claim naming the person's institution; empty: the issuer does",
    )

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, issuer: str) -> str:
        url = urlsplit(issuer)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        if not url.netloc or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
            raise ValueError("must be an https:// URL (http:// only on this machine's loopback)")
        if url.query or url.fragment:
            raise ValueError("an issuer has no query or fragment")
        return issuer

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in scopes:
            raise ValueError("must include 'openid'")
        return scopes


class Settings(BaseModel):
    """Everything an operator may set. Paths left empty are derived from `home`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(
        default=Path(".commonlab"),
        validate_default=True,  # made absolute, like a given one
        description="where the embedded data lives",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite under home")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = Field(default="", description="how clients reach this facility")
    executor: Literal["local", "slurm"] = "local"
    job_root: Path | None = Field(
        default=None, description="working directories of jobs (a shared file system for Slurm)"
    )
    local_slots: int = Field(default=0, ge=0, le=4096, description="local slots; 0: one per core")
    sandbox: Literal["auto", "bwrap", "uid", "none"] = Field(
        default="auto",
        description="local: how jobs are kept from the facility "
        "(compute/executors/sandbox.py); 'none' runs only CL-1 work",
    )
    job_uid_base: int = Field(
        default=2_000_000_000, ge=1000, le=4_000_000_000, description="local, root: first job uid"
    )
    job_uid_count: int = Field(
        default=1_000_000, ge=1, le=100_000_000, description="local, as root: how many job uids"
    )
    slurm_user: str = Field(
        default="cl-{project}-{slot}",
        description="Unix users Slurm jobs run as: a template with {slot} (and {project}); "
        "a job runs as a user no other running job has",
    )
    slurm_user_slots: int = Field(
        default=4,
        ge=1,
        le=1000,
        validate_default=True,  # a one-user slurm_user with the default slots is an error
        description="slurm: run-as users per project ({slot} 0..n-1), so how many of its jobs "
        "are handed to Slurm at once",
    )
    slurm_account_prefix: str = Field(
        default="",
        pattern=r"^[a-z0-9_.-]{0,16}$",
        description="prefix of the Slurm accounts commonlab manages (when several share Slurm)",
    )
    account_sync_minutes: int = Field(
        default=5, ge=0, le=10_080, description="slurm: sync accounts this often; 0: only by hand"
    )
    share_steer_minutes: int = Field(
        default=60, ge=0, le=10_080, description="slurm: one share-controller step this often"
    )
    compute_poll_ms: int = Field(default=1000, ge=10, le=600_000)
    signing_key_path: Path | None = Field(default=None, description="record signing key")
    log_origin: str = Field(default="", description="the record's checkpoint origin line")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1 << 30)
    max_upload_chunk_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 32)
    secure_cookies: bool = False
    # Commits in this process wake the sequencer at once; the tick only catches entries other
    # processes appended (another worker, `admin recover`). Polling every 50 ms burnt ~4% of
    # a core on an idle facility.
    sequencer_interval_ms: int = Field(default=2000, ge=1, le=60_000)
    # The operator's instruments and rate limits (operations/, docs/operators.md).
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="`commonlab up`'s log lines: one JSON object each, or text; auto: text on "
        "a terminal, JSON where a service manager or a file takes them",
    )
    metrics_networks: str = Field(
        default="127.0.0.0/8,::1/128",
        description="who may read /metrics: comma-separated networks (the Prometheus "
        "servers'); empty: nobody",
    )
    rate_limit_per_token: float = Field(
        default=20.0, ge=0, le=1_000_000, description="requests a second per API token; 0: off"
    )
    rate_limit_per_address: float = Field(
        default=50.0, ge=0, le=1_000_000, description="requests a second per address; 0: off"
    )
    rate_limit_burst_seconds: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="a client may send this many seconds' worth of requests at once",
    )
    rate_limit_exempt_networks: str = Field(
        default="127.0.0.0/8,::1/128",
        description="networks limited per token only, not per address (this machine's own "
        "jobs; compute nodes behind one address)",
    )

    oidc_providers: tuple[OidcProvider, ...] = Field(
        default=(),
        description="OpenID Connect providers people sign in with (TOML tables, or JSON)",
    )

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _providers_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):  # COMMONLAB_OIDC_PROVIDERS
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of providers ({exc})") from None
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_providers(cls, providers: tuple[OidcProvider, ...]) -> tuple[OidcProvider, ...]:
        names = [provider.name for provider in providers]
        if duplicate := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(f"two providers are named {duplicate!r}")
        return providers

    @field_validator("home", "job_root", "signing_key_path")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        # Fixed where the setting is read: a relative home (the default `.commonlab`) would
        # mean another place to every process that does not share this one's working
        # directory — a sandboxed job, the runner, a later `admin recover`.
        return None if path is None else path.expanduser().absolute()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return url

    @field_validator("slurm_user")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        unknown = set(_placeholders(template)) - {"project", "slot"}
        if unknown:
            raise ValueError(
                f"only {{project}} and {{slot}} may appear, not {{{sorted(unknown)[0]}}}"
            )
        return template

    @field_validator("slurm_user_slots")
    @classmethod
    def _a_user_per_slot(cls, slots: int, info: ValidationInfo) -> int:
        template = info.data.get("slurm_user")
        if template is not None and slots > 1 and "slot" not in _placeholders(template):
            raise ValueError(
                f"{slots} slots need {{slot}} in slurm_user: {template!r} names one user, and "
                "a running job never shares its user (e.g. 'cl-{project}-{slot}'; or "
                "slurm_user_slots = 1: one job at a time per user)"
            )
        return slots

    @field_validator("metrics_networks", "rate_limit_exempt_networks")
    @classmethod
    def _networks(cls, text: str) -> str:
        return ",".join(str(network) for network in parse_networks(text))

    @field_validator("log_origin")
    @classmethod
    def _origin_has_no_spaces(cls, origin: str) -> str:
        if any(ch.isspace() for ch in origin) or "+" in origin:
            raise ValueError("must be one word without spaces or '+', e.g. lab.example.org/log")
        return origin

    # Derived values: one place decides where things live.

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'commonlab.db').resolve()}"

    @property
    def jobs_path(self) -> Path:
        return self.job_root or self.home / "jobs"

    def slurm_users(self, project: str) -> tuple[str, ...]:
        """The Unix users a project's Slurm jobs run as, one per job handed over at once."""
        names = (
            self.slurm_user.format(project=project, slot=slot)
            for slot in range(self.slurm_user_slots)
        )
        return tuple(dict.fromkeys(names))

    @property
    def key_path(self) -> Path:
        return self.signing_key_path or self.home / "keys" / "record.key"

    @property
    def origin(self) -> str:
        """The origin line of a newly generated record key (a supplied key names its own)."""
        return self.log_origin or "commonlab.localhost/log"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


def parse_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated networks (`10.0.0.0/8, 2001:db8::/32`, a bare address is its own
    network; `none` or nothing: none); a ValueError names the first that is not one."""
    if text.strip().lower() == "none":
        return ()
    networks = []
    for part in text.split(","):
        if not (part := part.strip()):
            continue
        try:
            networks.append(ip_network(part, strict=False))
        except ValueError:
            raise ValueError(
                f"{part[:50]!r} is not a network: write e.g. 10.0.0.0/8 or 2001:db8::/32, "
                "comma-separated"
            ) from None
    return tuple(networks)


def _placeholders(template: str) -> list[str]:
    """The `{names}` a `str.format` template uses."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a template ({exc})") from None


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = raw
    return values


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"COMMONLAB_CONFIG: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"COMMONLAB_CONFIG: {path} is not valid TOML ({exc})") from None
    return data.get("commonlab", data)


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from overrides, then the environment, then the TOML file, then defaults."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    if config_file := environ.get(ENV_PREFIX + "CONFIG"):
        values.update(_from_toml(Path(config_file)))
    values.update(_from_env(environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "settings"
    setting = ENV_PREFIX + name.upper()
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
        return f"{name}: unknown setting (known: {', '.join(Settings.model_fields)})"
    _, reason = field_and_reason(first)
    return f"{setting}={first.get('input')!r}: {reason}"
