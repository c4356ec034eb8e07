"""Errors raised by the registry. HTTP codes are chosen only at the gateway's edge."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every registry error."""


class InvalidName(RegistryError, ValueError):
    """A model name does not match ``^[a-z0-9][a-z0-9._-]{0,63}$``."""


class ModelNotFound(RegistryError, LookupError):
    """No model of that name is registered."""


class VersionNotFound(RegistryError, LookupError):
    """The model exists but not that version or alias."""


class ArtifactCorrupt(RegistryError):
    """An artifact's sha256 does not match its manifest.

    ``file``, ``expected`` and ``actual`` (sha256 hex digests) are kept as attributes."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.expected = expected
        self.actual = actual


class UnsupportedArtifact(RegistryError, ValueError):
    """The file or object is not a model the registry can store."""


class PickleRefused(RegistryError, PermissionError):
    """A pickle/joblib file was offered without ``trust_pickle=True``."""


class UntrustedTypes(RegistryError):
    """A skops file holds types outside the trusted list."""


class RouteConflict(RegistryError):
    """A compare-and-swap on ``route.json`` kept losing after all retries."""


class InvalidRoute(RegistryError, ValueError):
    """A route change is not allowed (unknown version, weight outside 0-100, no canary …)."""


class InvalidReference(RegistryError, ValueError):
    """Reference data cannot be read or does not match the model's inputs."""
