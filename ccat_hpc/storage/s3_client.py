"""How ccat-hpc talks to S3: the boto3 client (retries, timeouts, credentials from the
environment only) and what its failures mean (missing, refused bytes, worth a retry).
boto3 is imported only when a client is made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccat_hpc.storage.base import ChecksumMismatch, ObjectNotFound, StorageError

if TYPE_CHECKING:
    from ccat_hpc.storage.s3 import S3Settings

_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "500",
        "502",
        "503",
        "504",
    }
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> S3Credentials:
        """``CCAT_S3_*`` when set; None values let boto3 find its own (``AWS_*``, profiles)."""
        return cls(
            access_key_id=environ.get("CCAT_S3_ACCESS_KEY_ID") or None,
            secret_access_key=environ.get("CCAT_S3_SECRET_ACCESS_KEY") or None,
            session_token=environ.get("CCAT_S3_SESSION_TOKEN") or None,
        )


def make_client(settings: S3Settings, credentials: S3Credentials) -> Any:
    """A boto3 S3 client for ``settings`` (boto3 is imported only here, when S3 is used)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageError(
            "an S3 location needs boto3: pip install 'ccat-hpc[s3]' (or set the location's "
            "storage to disk)"
        ) from None

    config = Config(
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=max(10, settings.max_in_flight * 2),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or "us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=config,
    )


def as_storage_error(exc: Exception, where: str, action: str) -> StorageError:
    """A boto3/botocore failure as a StorageError that says whether a retry can help."""
    if isinstance(exc, StorageError):
        return exc
    code, status, message = _client_error_details(exc)
    if code == "NoSuchUpload":  # the multipart upload was aborted or expired: start again
        return StorageError(f"{where}: {action}: the upload is gone ({code})", transient=True)
    if code in _MISSING_CODES or status == 404:
        if code == "NoSuchBucket":
            return StorageError(f"{where}: {action}: the bucket does not exist")
        return ObjectNotFound(f"{where}: no such object")
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        # damaged on the way: sending the bytes again can help
        return ChecksumMismatch(
            f"{where}: {action}: the server refused the bytes ({code})", transient=True
        )
    if code:
        transient = code in _TRANSIENT_CODES or (status is not None and status >= 500)
        return StorageError(f"{where}: {action}: {code}: {message}", transient=transient)
    name = type(exc).__name__
    transient = _is_connection_problem(exc)
    detail = f"{name}: {exc}" if transient else name
    return StorageError(f"{where}: {action}: {detail}", transient=transient)


def _client_error_details(exc: Exception) -> tuple[str, int | None, str]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", None, ""
    error = response.get("Error", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code", "") or (status or ""))
    message = str(error.get("Message", "") or "")
    return code, status if isinstance(status, int) else None, message


def _is_connection_problem(exc: Exception) -> bool:
    try:
        from botocore import exceptions as botocore_errors
    except ImportError:  # pragma: no cover - boto3 is installed with the s3 extra
        return False
    transient_types = (
        botocore_errors.EndpointConnectionError,
        botocore_errors.ConnectionClosedError,
        botocore_errors.ReadTimeoutError,
        botocore_errors.ConnectTimeoutError,
        botocore_errors.ResponseStreamingError,
    )
    return isinstance(exc, (*transient_types, ConnectionError, TimeoutError))
