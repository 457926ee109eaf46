"""Registry client: pull and push models over the OCI/Docker distribution API, as Ollama does.

The server calls (each a synchronous generator of Ollama's progress dicts; run it in a thread)::

    from pyollama.store.registry import pull, push, Credentials
    for event in pull(store, "127.0.0.1:5000/team/smollm2:135m", insecure=True): ...   # /api/pull
    for event in push(store, "127.0.0.1:5000/team/smollm2:135m", insecure=True): ...   # /api/push

Errors are raised from the iterator as :class:`~pyollama.errors.RegistryError` subclasses
(``RemoteModelNotFound``, ``AuthError``, ``InsecureProtocol``, ``RegistryUnreachable``) or store errors
(``DigestMismatch``, ``ModelNotFound``, ``InvalidModelName``), with Ollama's messages; each carries an
HTTP ``status``. ``create(store, req, pull=puller(store))`` pulls a missing base model.

Modules: ``options`` (settings, credentials), ``auth`` (challenges, basic, bearer tokens), ``session``
(HTTP: proxies, redirects, retries, errors), ``download`` (one blob, ranged parts, resume, sharing),
``pull``, ``upload`` (one blob: mount, PUT, PATCH chunks), ``push``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyollama.store.names import ModelName
from pyollama.store.registry.options import Credentials, RegistryOptions, lookup_credentials
from pyollama.store.registry.pull import pull, pull_all
from pyollama.store.registry.push import push
from pyollama.store.store import Store


def puller(store: Store, **kw: Any) -> Callable[[ModelName], Iterable[dict[str, Any]]]:
    """The ``pull=`` callable for :func:`pyollama.store.create` (pulls a missing ``FROM`` model)."""
    def run(name: ModelName) -> Iterable[dict[str, Any]]:
        return pull(store, name, **kw)
    return run


__all__ = ["Credentials", "RegistryOptions", "lookup_credentials", "pull", "pull_all", "puller", "push"]
