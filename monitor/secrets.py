"""Secrets given inline, from a mounted file, or by an environment override.

Kubernetes and Docker mount secrets as files, so every secret key ``X`` also accepts
``X_file``. The file is read once, at config load, so a missing or empty file is a
config error naming the key rather than a failed page at 3 a.m. An environment
override sets ``X`` itself (``EXFIL_MONITOR_OUTPUTS__0__ROUTING_KEY``), and must win over
a ``X_file`` left in the YAML: so when both are present, ``X`` is used and the file is
not read. The value is only ever held as a ``SecretStr``, which never prints.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, SecretStr


def resolve_secret(model: BaseModel, name: str, *, required: bool) -> None:
    """Fill ``model.<name>`` from ``model.<name>_file`` when only the file is given.

    Raises ``ValueError`` (pydantic reports it at the model's position) when the file
    cannot be read or is empty, or when ``required`` and neither form is given.
    """
    value: SecretStr | None = getattr(model, name)
    path: Path | None = getattr(model, f"{name}_file")
    if value is None and path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{name}_file: cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{name}_file: {path} is not UTF-8 text") from None
        if not text:
            raise ValueError(f"{name}_file: {path} is empty")
        # The model is frozen; this runs inside its own validator, before anyone sees it.
        object.__setattr__(model, name, SecretStr(text))
        value = getattr(model, name)
    if required and value is None:
        raise ValueError(f"give {name} (a secret) or {name}_file (a file holding it)")
    if value is not None and not value.get_secret_value().strip():
        raise ValueError(f"{name} is empty")
