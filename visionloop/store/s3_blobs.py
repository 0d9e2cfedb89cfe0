"""The blob store in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...), shared by every process.

``VISIONLOOP_BLOB_URL=s3://bucket/prefix`` names the bucket and key prefix; the endpoint, region and
credentials come from the standard variables boto3 reads itself (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), so secrets never pass through
visionloop's settings. Addressing is path-style (``endpoint/bucket/key``), which SeaweedFS and
MinIO need and AWS still serves; request checksums are sent only where S3 requires them, as not
every S3-compatible server understands the newer streaming checksums. A PUT is atomic, so a reader
never sees half a blob.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from visionloop.config import SettingsError
from visionloop.store.blobs import BlobMissing, BlobUnavailable, blob_key, derived_name, digest_of

_ABSENT = ("404", "NoSuchKey", "NotFound")


class S3BlobStore:
    def __init__(self, url: str, client: Any = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or len(parsed.netloc) < 3:
            raise SettingsError(f"VISIONLOOP_BLOB_URL={url!r}: expected s3://bucket/prefix (a bucket name of 3+ "
                                "characters)")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = client or _client()
        self._check_bucket(url)

    def _check_bucket(self, url: str) -> None:
        """Fail at start, naming the bucket, rather than on the first upload."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "AWS's own endpoint")
            raise SettingsError(f"VISIONLOOP_BLOB_URL={url!r}: bucket {self.bucket!r} is not usable at {endpoint} "
                                f"({exc}); create it, or check AWS_ENDPOINT_URL and the credentials") from exc

    def _key(self, digest: str) -> str:
        return self._prefixed(blob_key(digest))

    def _prefixed(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, data: bytes, digest: str | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        digest = digest or digest_of(data)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise BlobUnavailable(f"s3://{self.bucket}/{self.prefix} did not take the blob: {exc}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(digest))["Body"].read())
        except ClientError as exc:
            raise BlobMissing(f"blob {digest} is not in s3://{self.bucket}/{self.prefix}: "
                              f"{exc.response.get('Error', {}).get('Code', exc)}") from exc
        except BotoCoreError as exc:
            raise BlobMissing(f"blob {digest} cannot be read from s3://{self.bucket}: {exc}") from exc

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _ABSENT:
                return False
            raise BlobUnavailable(f"s3://{self.bucket}/{self.prefix} did not say if it has {digest}: {exc}") from exc
        return True

    def delete(self, digest: str) -> None:
        """The blob and every key beside it that starts with its name (what was derived from it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(digest)
        try:
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key).get("Contents") or []
            for name in sorted({o["Key"] for o in listed} - {key}) + [key]:  # the blob itself last
                self.client.delete_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise BlobUnavailable(f"s3://{self.bucket}/{self.prefix} did not delete blob {digest}: {exc}") from exc

    def digests(self, before: float | None = None) -> Iterator[str]:
        """Keys below the prefix named like a blob (not what is derived from one, nor anything else)."""
        start = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for obj in page.get("Contents") or []:
                digest = obj["Key"][len(start):].rpartition("/")[2]
                if (obj["Key"] == self._key(digest) and len(digest) == 64
                        and (before is None or obj["LastModified"].timestamp() < before)):
                    yield digest

    def put_derived(self, digest: str, kind: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._prefixed(derived_name(digest, kind)), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise BlobUnavailable(f"s3://{self.bucket}/{self.prefix} did not take a {kind} of {digest}: {exc}") from exc

    def get_derived(self, digest: str, kind: str) -> bytes | None:
        """None also when the store cannot answer: what is derived can be made again."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket,
                                                Key=self._prefixed(derived_name(digest, kind)))["Body"].read())
        except (ClientError, BotoCoreError):
            return None


def client_config() -> Any:
    """Path-style addressing, checksums only where S3 requires them, a few retries."""
    from botocore.config import Config

    return Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                  request_checksum_calculation="when_required", response_checksum_validation="when_required")


def _client() -> Any:
    import boto3

    return boto3.session.Session().client("s3", region_name=os.environ.get("AWS_REGION") or None,
                                          config=client_config())
