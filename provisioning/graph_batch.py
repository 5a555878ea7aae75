"""Microsoft Graph ``$batch``: membership changes and reads, 20 requests a call, a few calls at once.

Graph runs the requests of one batch in any order and answers each with its own status; throttled
ones (inner 429 with ``Retry-After``, 5xx) are sent again after the delay Graph named, within a time
budget well inside the lease on the operations they carry. :class:`GraphBatches` is mixed into
:class:`provisioning.entra.EntraProvider`, whose ``_call``, ``_error``, ``_group_id``, ``_user_id``,
``_request`` and ``policy`` it uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from handlers.ports import ProviderError
from provisioning.http import TRANSIENT_STATUSES, Reply, RetryPolicy, parse_retry_after, status_may_have_landed

BATCH_LIMIT = 20
BATCHES_IN_FLIGHT = 4  # $batch requests sent at once; Graph runs each one's requests in any order
# A batch call keeps retrying throttled requests for at most this long, well inside the 60 s lease
# on the operations it carries; what is left is tried again by the next sweep.
BATCH_TIME_BUDGET = 40.0


def _graph_error(reply: Reply) -> tuple[str, str]:
    err = reply.data.get("error") if isinstance(reply.data, dict) else None
    if isinstance(err, dict):
        return str(err.get("code") or ""), str(err.get("message") or "")
    return "", reply.text[:200]


def _judge(kind: str, status: int, code: str, message: str, what: str, correlation_id: str | None,
           retry_after: float | None = None, may_have_landed: bool = False) -> ProviderError | None:
    """None when the membership change reached its goal, else the error to report (``may_have_landed``: an
    earlier try may have carried the change out; so may this one, answered 500, 502 or 504)."""
    if 200 <= status < 300:
        return None
    if kind == "add" and status == 400 and "already exist" in message:
        return None
    if kind == "remove" and status == 404:
        return None
    return ProviderError(f"{what}: HTTP {status} {code}: {message}".rstrip(": "),
                         transient=status in TRANSIENT_STATUSES, retry_after=retry_after, status=status,
                         correlation_id=correlation_id,
                         may_have_landed=may_have_landed or status_may_have_landed(status))


class GraphBatches:
    """``$batch`` for :class:`~provisioning.entra.EntraProvider`."""

    policy: RetryPolicy

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                    what: str, changes: bool | None = None) -> Reply:
        raise NotImplementedError

    def _error(self, reply: Reply, what: str) -> ProviderError:
        raise NotImplementedError

    async def _group_id(self, group: str) -> str:
        raise NotImplementedError

    async def _user_id(self, email: str) -> str | None:
        raise NotImplementedError

    def _request(self, kind: str, gid: str, uid: str) -> tuple[str, str, Any]:
        raise NotImplementedError

    async def _batch_get(self, asks: list[tuple[str, str]], what: str) -> dict[str, tuple[int, Any]]:
        """GET requests through ``$batch`` (20 a call, a few calls at once); inner 429 and 5xx answers are
        asked again after the ``Retry-After`` Graph gave them. Returns id → (status, body)."""
        results: dict[str, tuple[int, Any]] = {}
        pending = asks
        idle = 0
        while pending:
            refused: list[tuple[str, str]] = []
            waits: list[float] = []
            chunks = list(_chunks(pending, BATCH_LIMIT))
            for k in range(0, len(chunks), BATCHES_IN_FLIGHT):
                replies = await asyncio.gather(*(self._call(
                    "POST", "/$batch", body={"requests": [{"id": i, "method": "GET", "url": u} for i, u in chunk]},
                    what=what, changes=False) for chunk in chunks[k:k + BATCHES_IN_FLIGHT]))
                for chunk, reply in zip(chunks[k:k + BATCHES_IN_FLIGHT], replies, strict=True):
                    if not reply.ok:
                        raise self._error(reply, what)
                    answers = {str(a.get("id")): a for a in reply.data.get("responses") or []}
                    for ask in chunk:
                        answer = answers.get(ask[0], {"status": 503})
                        status = int(answer.get("status") or 503)
                        if status in TRANSIENT_STATUSES:
                            headers = {str(h).lower(): str(v) for h, v in (answer.get("headers") or {}).items()}
                            wait = parse_retry_after(headers.get("retry-after"))
                            if wait is not None:
                                waits.append(wait)
                            refused.append(ask)
                        else:
                            results[ask[0]] = (status, answer.get("body"))
            if refused:
                idle = idle + 1 if len(refused) == len(pending) else 0
                if idle >= self.policy.max_attempts:
                    raise ProviderError(f"Graph {what}: still throttled after {idle} tries", transient=True,
                                        retry_after=max(waits) if waits else None, status=429)
                await asyncio.sleep(self.policy.delay(max(idle, 1), max(waits) if waits else None))
            pending = refused
        return results

    async def _removal_gone(self, gid: str, group: str, email: str, uid: str) -> None:
        """A removal of ``uid`` answered 404: check that no other account with this address is a member (the id
        may be stale), removing it if one is. Nothing by default."""

    async def _add_again(self, group: str, email: str, uid: str) -> bool:
        """An add of ``uid`` answered 404: whether it was made again for the account now carrying the address (the
        id may be stale); False when the address still names ``uid``. Never by default."""
        return False

    async def apply_batch(self, ops: list[tuple[str, str, str]]) -> list[ProviderError | None]:
        """Apply ("add"|"remove", group, email) operations through ``$batch``; one result per op. A change
        answered 404 is checked as a single call's is: a removal (no such member by that id) by
        :meth:`_removal_gone`, an add (no such user by that id) by :meth:`_add_again`."""
        gone: list[int] = []
        keys: dict[int, tuple[str, str]] = {}
        results = await self._apply_rounds(ops, keys, gone)
        for i in gone:
            kind, group, email = ops[i]
            gid, uid = keys[i]
            answer = results[i]
            try:
                if kind == "remove" and answer is None:
                    await self._removal_gone(gid, group, email, uid)
                elif kind == "add" and answer is not None and answer.status == 404 \
                        and await self._add_again(group, email, uid):
                    results[i] = None
            except ProviderError as exc:
                # an earlier try of the batch's change may have been carried out, whatever this one did
                results[i] = exc.landed(answer is not None and answer.may_have_landed)
        return results

    async def _apply_rounds(self, ops: list[tuple[str, str, str]], keys: dict[int, tuple[str, str]],
                            gone: list[int]) -> list[ProviderError | None]:
        results: list[ProviderError | None] = [None] * len(ops)
        pending: list[tuple[int, dict[str, Any]]] = []
        for i, (kind, group, email) in enumerate(ops):
            try:
                gid = await self._group_id(group)
                uid = await self._user_id(email)
                if uid is None:
                    if kind == "add":
                        results[i] = ProviderError(f"Graph add {email}: no such user", transient=False, status=404)
                    continue
                method, path, body = self._request(kind, gid, uid)
            except (ProviderError, ValueError) as exc:
                results[i] = exc if isinstance(exc, ProviderError) else ProviderError(str(exc), transient=False)
                continue
            request: dict[str, Any] = {"id": str(i), "method": method, "url": path}
            if body is not None:
                request |= {"body": body, "headers": {"Content-Type": "application/json"}}
            pending.append((i, request))
            keys[i] = (gid, uid)
        idle_rounds = 0  # rounds in a row in which nothing got through
        deadline = time.monotonic() + BATCH_TIME_BUDGET
        while pending:
            # Graph runs a batch's requests in any order: two changes to one membership go in
            # separate rounds, in the order they were asked for.
            now, later, seen = [], [], set()
            for i, request in pending:
                (later if keys[i] in seen else now).append((i, request))
                seen.add(keys[i])
            throttled: list[tuple[int, dict[str, Any]]] = []
            hint: float | None = None
            progress = False
            chunks = list(_chunks(now, BATCH_LIMIT))
            for k in range(0, len(chunks), BATCHES_IN_FLIGHT):
                group_of = chunks[k:k + BATCHES_IN_FLIGHT]
                refused: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in group_of]
                hints = await asyncio.gather(*(self._batch_round(ops, chunk, results, out, gone)
                                               for chunk, out in zip(group_of, refused, strict=True)))
                for chunk, out in zip(group_of, refused, strict=True):
                    progress |= len(out) < len(chunk)
                    throttled += out
                quota_hints = [h for h in hints if h is not None]
                if quota_hints:
                    hint = min(quota_hints)
                    # Graph's write quota is spent: the rest of this round would only be refused
                    # too. It waits with the refused ones for the first slot Graph names.
                    for i, request in (item for rest in chunks[k + BATCHES_IN_FLIGHT:] for item in rest):
                        kind, group, email = ops[i]
                        results[i] = _after(results[i], ProviderError(
                            f"Graph {kind} {email} ({group}): not sent, write quota spent",
                            transient=True, retry_after=hint, status=429))
                        throttled.append((i, request))
                    break
            if throttled:
                idle_rounds = 0 if progress else idle_rounds + 1
                wait = self.policy.delay(max(idle_rounds, 1), hint)
                if idle_rounds >= self.policy.max_attempts or time.monotonic() + wait > deadline:
                    # their results say transient, with the delay Graph asked for: the operations
                    # are tried again by a later sweep, when the provider said to. Those waiting behind
                    # them on the same membership were never sent this call (None would say done)
                    for i, _ in later:
                        kind, group, email = ops[i]
                        results[i] = _after(results[i], ProviderError(
                            f"Graph {kind} {email} ({group}): not sent, an earlier change to the same "
                            "membership was not answered", transient=True, retry_after=hint, status=429))
                    return results
                await asyncio.sleep(wait)
            pending = sorted(throttled + later, key=lambda item: item[0])
        return results

    async def _batch_round(self, ops: list[tuple[str, str, str]], chunk: list[tuple[int, dict[str, Any]]],
                           results: list[ProviderError | None], throttled: list[tuple[int, dict[str, Any]]],
                           gone: list[int]) -> float | None:
        """Send one ``$batch``; judge each answer, put refused ones in ``throttled``.

        Returns the shortest ``Retry-After`` among inner 429 answers (when the first write slot
        frees), or None when nothing was throttled by the quota (5xx answers back off instead).
        """
        try:
            reply = await self._call("POST", "/$batch", body={"requests": [r for _, r in chunk]}, what="$batch")
        except ProviderError as exc:
            for i, _ in chunk:
                results[i] = _after(results[i], exc)
            return None
        if not reply.ok:
            error = self._error(reply, "$batch")
            for i, _ in chunk:
                results[i] = _after(results[i], error)
            return None
        answers = {str(a.get("id")): a for a in reply.data.get("responses") or []}
        hint: float | None = None
        for i, request in chunk:
            kind, group, email = ops[i]
            answer = answers.get(request["id"], {"status": 500, "body": {}})
            status = int(answer.get("status") or 500)
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            retry_after = parse_retry_after(headers.get("retry-after"))
            body = answer.get("body")
            code, message = _graph_error(Reply(status, headers, body if isinstance(body, dict) else None))
            # an earlier try of this $batch that got no answer may have carried out every request in it
            results[i] = _after(results[i], _judge(kind, status, code, message, f"Graph {kind} {email} ({group})",
                                                   reply.correlation_id, retry_after, reply.may_have_landed))
            if status == 404:
                gone.append(i)
            if status in TRANSIENT_STATUSES:
                throttled.append((i, request))
                if status == 429:
                    wait = retry_after if retry_after is not None else 0.0
                    hint = wait if hint is None else min(hint, wait)
        return hint


def _after(previous: ProviderError | None, result: ProviderError | None) -> ProviderError | None:
    """An operation's result after another round: an earlier round that may have carried the change out
    stays said (``may_have_landed``) on the error of a later one."""
    if result is None or previous is None:
        return result
    return result.landed(previous.may_have_landed)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
