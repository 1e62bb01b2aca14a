"""Why a Kafka client could not start, in words an operator can act on.

aiokafka's bootstrap catches every per-server failure, logs it, and raises one
``KafkaConnectionError("Unable to bootstrap from ...")``: a wrong password, a broker
certificate the CA does not vouch for and a broker that is down all read the same on
``/readyz``. When that is the error, one direct connection per bootstrap server, with the
same security settings, recovers the cause. It runs only after a failed start (once per
retry, between backoffs), never on the hot path. Secrets stay out of the text: the broker's
SASL error message names the mechanism, not the credentials, and only the username is added.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

_CONNECT_OPTIONS = ("client_id", "request_timeout_ms", "ssl_context", "security_protocol",
                    "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")  # fmt: skip


async def explain(exc: BaseException, options: dict[str, Any]) -> str:
    """The problem to report for ``exc``, raised by starting a client made with ``options``
    (:meth:`monitor.config.KafkaConfig.client_options`)."""
    if not (isinstance(exc, KafkaConnectionError) and "Unable to bootstrap" in str(exc)):
        return f"broker unreachable: {exc}"
    for server in options["bootstrap_servers"]:
        cause = await _probe(server, options)
        if cause is not None:
            return cause
    return f"broker unreachable: {exc}"


async def _probe(server: str, options: dict[str, Any]) -> str | None:
    """A security failure connecting to ``server``, or None (it connects, or is merely down)."""
    host, _, port = server.rpartition(":")
    kwargs = {key: options[key] for key in _CONNECT_OPTIONS if key in options}
    try:
        conn = await create_conn(host.strip("[]"), int(port), **kwargs)
    except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as err:
        user, mechanism = options.get("sasl_plain_username"), options.get("sasl_mechanism")
        return f"authentication failed: {server} refused SASL {mechanism} as user {user!r}: {err}"
    except ssl.SSLCertVerificationError as err:
        return f"TLS certificate verification failed for {server}: {err.verify_message} (check ssl.cafile)"
    except ssl.SSLError as err:
        return f"TLS handshake with {server} failed: {err.reason or err}"
    except (TimeoutError, OSError, KafkaError, ValueError):
        return None
    conn.close()
    return None
