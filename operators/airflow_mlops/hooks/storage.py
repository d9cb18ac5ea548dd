"""Object-storage credentials from an Airflow connection, for every ``s3://`` URI a task opens.

The core reads and writes through fsspec, which finds credentials in the environment (``AWS_*``)
or the instance profile. Where a team keeps them in an Airflow connection instead (type ``aws``:
login = access key id, password = secret key, extra ``endpoint_url`` / ``region_name`` /
``aws_session_token``), a task applies that connection as fsspec's default for ``s3`` before it
runs; explicit storage options in code still win. No connection: nothing changes.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "aws_default"


def s3_options(login: str | None, password: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    """s3fs keyword arguments for a connection's fields."""
    options: dict[str, Any] = {}
    if login:
        options["key"] = login
    if password:
        options["secret"] = password
    if extra.get("aws_session_token"):
        options["token"] = extra["aws_session_token"]
    client: dict[str, Any] = {}
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get(
        "endpoint_url"
    )
    if endpoint:
        client["endpoint_url"] = endpoint
    if extra.get("region_name"):
        client["region_name"] = extra["region_name"]
    if client:
        options["client_kwargs"] = client
    return options


def configure_object_storage(conn_id: str | None = DEFAULT_CONN_ID) -> bool:
    """Make connection ``conn_id`` fsspec's default for ``s3://`` in this process.

    :returns: whether a connection was found and applied.
    """
    if not conn_id:
        return False
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not defined: the environment's credentials apply, as before
        return False
    import fsspec.config

    options = s3_options(conn.login, conn.password, conn.extra_dejson or {})
    if not options:
        return False
    fsspec.config.conf["s3"] = {**fsspec.config.conf.get("s3", {}), **options}
    endpoint = options.get("client_kwargs", {}).get("endpoint_url", "AWS")
    log.info("s3:// credentials from connection %r (endpoint %s)", conn_id, endpoint)
    return True
