"""A registry on S3 or an S3-compatible object store, through s3fs's botocore client.

Create-only writes are ``PutObject`` with ``If-None-Match: *``; compare-and-swap is
``PutObject`` with ``If-Match: <etag>`` (S3 has supported both since 2024; so do MinIO and
moto's server). An append is a compare-and-swap loop on the whole object, so concurrent
appends are retried, never lost. Listings and reads go straight to the client, never through
s3fs's listing cache, so every process sees the store as it is now.

The endpoint comes from ``storage_options`` (``endpoint_url`` or
``client_kwargs={"endpoint_url": ...}``), else ``MLGATE_S3_ENDPOINT_URL``, else botocore's own
``AWS_ENDPOINT_URL``; credentials and region follow botocore's usual chain.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Mapping

_APPEND_ATTEMPTS = 200


def _is_precondition_failure(exc: BaseException) -> bool:
    """True for a 412 (condition false) or 409 (concurrent conditional write) answer."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class S3Store:
    """Store under ``s3://bucket/prefix``."""

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        import s3fs

        rest = url.split("://", 1)[1]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise RegistryError(f"registry URL {url!r}: no bucket name")
        self.prefix = prefix.strip("/")
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        options = dict(storage_options or {})
        client_kwargs = dict(options.get("client_kwargs") or {})
        endpoint = (env or {}).get("MLGATE_S3_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in client_kwargs:
            options["endpoint_url"] = endpoint
        self._options = options
        self._fs = s3fs.S3FileSystem(**options)
        self._pid = os.getpid()

    @property
    def fs(self) -> Any:
        """s3fs's filesystem; rebuilt in a forked child (its event loop does not survive)."""
        if self._pid != os.getpid():
            import s3fs

            self._fs = s3fs.S3FileSystem(**{**self._options, "skip_instance_cache": True})
            self._pid = os.getpid()
        return self._fs

    # -- plumbing ---------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self.fs.call_s3(method, Bucket=self.bucket, **kwargs)

    async def _get(self, key: str) -> tuple[bytes, str]:
        resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self._key(key))
        body = resp["Body"]
        try:
            data = await body.read()
        finally:
            body.close()
        return bytes(data), str(resp["ETag"])

    def _put(self, key: str, data: bytes, **conditions: str) -> bool:
        try:
            self._call("put_object", Key=self._key(key), Body=data, **conditions)
        except FileExistsError:
            return False
        except FileNotFoundError:
            if "IfMatch" in conditions:
                return False  # the object vanished: the tag cannot match
            raise
        except OSError as exc:
            if _is_precondition_failure(exc):
                return False
            raise
        return True

    # -- Store ------------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        from fsspec.asyn import sync

        data, _tag = sync(self.fs.loop, self._get, key)
        return bytes(data)

    async def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        found = await asyncio.gather(*(self._get(k) for k in keys), return_exceptions=True)
        out = {}
        for key, result in zip(keys, found, strict=True):
            if isinstance(result, FileNotFoundError):
                continue
            if isinstance(result, BaseException):
                raise result
            out[key] = result[0]
        return out

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        from fsspec.asyn import sync

        result: dict[str, bytes] = sync(self.fs.loop, self._get_many, keys)
        return result

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        from fsspec.asyn import sync

        try:
            data, tag = sync(self.fs.loop, self._get, key)
        except FileNotFoundError:
            return None
        return data, tag

    def write(self, key: str, data: bytes) -> None:
        self._put(key, data)

    def create(self, key: str, data: bytes) -> bool:
        return self._put(key, data, IfNoneMatch="*")

    def write_if(self, key: str, data: bytes, *, tag: str | None) -> bool:
        if tag is None:
            return self.create(key, data)
        return self._put(key, data, IfMatch=tag)

    def append(self, key: str, data: bytes) -> None:
        for attempt in range(_APPEND_ATTEMPTS):
            current = self.read_tagged(key)
            if current is None:
                if self.create(key, data):
                    return
            elif self.write_if(key, current[0] + data, tag=current[1]):
                return
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))
        raise RegistryError(
            f"{self.url}/{key}: append kept losing to concurrent writers "
            f"after {_APPEND_ATTEMPTS} attempts"
        )

    def exists(self, key: str) -> bool:
        return self.stamp(key) is not None

    def stamp(self, key: str) -> str | None:
        try:
            head = self._call("head_object", Key=self._key(key))
        except FileNotFoundError:
            return None
        return str(head["ETag"])

    def _list(self, prefix: str, *, delimiter: bool) -> tuple[list[str], list[str]]:
        full = self._key(prefix).rstrip("/") + "/"
        keys: list[str] = []
        folders: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": full}
            if delimiter:
                kwargs["Delimiter"] = "/"
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self._call("list_objects_v2", **kwargs)
            except FileNotFoundError:
                return [], []
            keys.extend(obj["Key"][len(full) :] for obj in page.get("Contents", []))
            folders.extend(
                p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])
            )
            if not page.get("IsTruncated"):
                return keys, folders
            token = page["NextContinuationToken"]

    def children(self, prefix: str) -> list[str]:
        keys, folders = self._list(prefix, delimiter=True)
        return sorted(n for n in {*keys, *folders} if n and not n.startswith("."))

    def keys(self, prefix: str) -> list[str]:
        keys, _ = self._list(prefix, delimiter=False)
        return sorted(keys)
