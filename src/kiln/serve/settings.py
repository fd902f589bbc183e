"""Server settings: validated once from the CLI flags, then handed to the app (no globals)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kiln.errors import ConfigError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


class ServeSettings(BaseModel):
    """How `kiln serve` listens, batches, limits and authenticates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"  # loopback: reachable from this machine only, unless asked otherwise
    port: int = Field(8000, ge=0, le=65535)  # 0 picks a free port
    runtime: Literal["auto", "onnx", "torch"] = "auto"
    max_batch: int = Field(64, ge=1, le=4096)
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0)
    max_queue: int = Field(256, ge=1)  # requests admitted at once: being received, parsed or waiting for the model
    max_queue_rows: int = Field(16384, ge=1)  # rows waiting for the model (a larger request may enter an empty queue)
    timeout_s: float = Field(10.0, gt=0.0)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_rows: int = Field(1024, ge=1)
    max_image_pixels: int = Field(1 << 26, ge=1)  # decoded PNG pixels per request, all images together
    header_timeout_s: float = Field(10.0, gt=0.0)  # a connection's request headers must arrive within this
    max_connections: int = Field(1000, ge=1)  # open connections; beyond, requests get 503 (probes excepted)
    api_key: SecretStr | None = None
    access_log: bool = False
    # Host header values served (port ignored); "*" serves any. None: the loopback names when bound to
    # loopback (a web page cannot then reach the server by DNS rebinding), any otherwise.
    allowed_hosts: tuple[str, ...] | None = None
    model_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )  # /v2/models/<name>; default: the run's
    # A CSV of `intent,answer` rows: each prediction gets the answer for its label (serve/answers.py).
    responses: str | None = None
    # Below this probability for its label, a prediction's answer is a hand-off to a person, never a guess.
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)  # a text generator's most new tokens per request (/v1/generate)

    def hosts(self) -> frozenset[str] | None:
        """The Host names this server answers, lower-case; None when it answers any."""
        names = self.allowed_hosts
        if names is None:
            names = LOOPBACK_NAMES if self.host in LOOPBACK_NAMES or self.host.startswith("127.") else ("*",)
        return None if "*" in names else frozenset(name.lower() for name in names)

    @classmethod
    def from_cli(cls, api_key_env: str | None = None, **flags: Any) -> ServeSettings:
        """Validate CLI flags; the API key is read from the environment variable `api_key_env`."""
        if api_key_env is not None:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ConfigError(
                    f"`--api-key-env {api_key_env}`: the environment variable {api_key_env} is not set or empty. "
                    f"Set it to the key clients must send as `Authorization: Bearer <key>`."
                )
            flags["api_key"] = key
        try:
            return cls(**flags)
        except ValidationError as exc:
            err = exc.errors()[0]
            flag = "--" + str(err["loc"][0]).replace("_", "-")
            raise ConfigError(f"Invalid value for `{flag}`: {err['msg'].lower()}; got {err.get('input')!r}.") from None
