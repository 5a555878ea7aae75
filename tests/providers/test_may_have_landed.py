"""Whether a membership change the client gave up on may have been carried out (``ProviderError.may_have_landed``),
judged from what every try saw, the client's own retries included: a time-out or a 500/502/504 may have been carried
out; a 429 or a 503 (Graph: unavailable for maintenance or overloaded; Okta: read-only mode) was turned away before
anything was done. A read never lands. Through the Graph and Okta stand-ins, single calls and Graph's ``$batch``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from handlers.ports import ProviderError

if TYPE_CHECKING:
    from tests.providers.conftest import EntraEnv, OktaEnv
    from tests.standins.graph import GraphStandIn
    from tests.standins.okta import OktaStandIn

ANA = "ana@example.com"


async def _graph_add_error(entra: EntraEnv, graph: GraphStandIn, *faults: tuple[int, int]) -> ProviderError:
    ref = graph.add_group("g")
    graph.add_user(ANA)
    await entra.provider.get_user(ANA)  # the look-ups done: the faults below hit the add's tries
    for n, status in faults:
        if status == 0:
            graph.slow_next(n, seconds=1.0)  # held past the client's time-out, then carried out
        else:
            graph.fail_next(n, status=status, retry_after=0.01)
    with pytest.raises(ProviderError) as caught:
        await entra.provider.add_member(ref, ANA)
    assert caught.value.transient, caught.value
    return caught.value


@pytest.mark.parametrize("status", [429, 503])
async def test_a_graph_add_turned_away_at_every_try_did_not_land(entra: EntraEnv, graph: GraphStandIn,
                                                                  status: int) -> None:
    error = await _graph_add_error(entra, graph, (3, status))
    assert not error.may_have_landed, error


@pytest.mark.parametrize("first", [0, 500, 502, 504])
async def test_a_graph_add_that_timed_out_or_failed_mid_way_once_may_have_landed(
        entra: EntraEnv, graph: GraphStandIn, first: int) -> None:
    error = await _graph_add_error(entra, graph, (1, first), (2, 429))  # then throttled until the client gives up
    assert error.status == 429 and error.may_have_landed, error


async def test_a_graph_read_that_timed_out_never_landed(entra: EntraEnv, graph: GraphStandIn) -> None:
    graph.add_user(ANA)
    graph.slow_next(3, seconds=1.0)
    with pytest.raises(ProviderError) as caught:
        await entra.provider.get_user(ANA)
    assert not caught.value.may_have_landed


async def test_a_batch_says_which_of_its_changes_may_have_landed(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    for email in (ANA, "bo@example.com"):
        graph.add_user(email)
        await entra.provider.get_user(email)
    graph.fail_inner_next(1, status=500)  # Ana's add fails mid-way in the first round: it may have landed
    graph.fail_inner_next(100, status=429, retry_after=0.01)  # every other inner answer is throttled
    ana, bo = await entra.provider.apply_batch([("add", ref, ANA), ("add", ref, "bo@example.com")])
    assert isinstance(ana, ProviderError) and ana.status == 429 and ana.may_have_landed, ana
    assert isinstance(bo, ProviderError) and bo.status == 429 and not bo.may_have_landed, bo


async def test_a_batch_whose_call_timed_out_may_have_landed_every_change(entra: EntraEnv, graph: GraphStandIn
                                                                         ) -> None:
    ref = graph.add_group("g")
    for email in (ANA, "bo@example.com"):
        graph.add_user(email)
        await entra.provider.get_user(email)
    graph.slow_next(1, seconds=1.0)  # the first $batch is held past the time-out (and then carried out)
    graph.fail_inner_next(100, status=429, retry_after=0.01)
    results = await entra.provider.apply_batch([("add", ref, ANA), ("add", ref, "bo@example.com")])
    for result in results:
        assert isinstance(result, ProviderError) and result.may_have_landed, result


@pytest.mark.parametrize(("statuses", "landed"), [((429, 429, 429), False), ((503, 503, 503), False),
                                                  ((500, 429, 429), True), ((429, 502, 403), True),
                                                  ((403,), False)])
async def test_an_okta_add_says_whether_a_try_may_have_landed(okta_provider_env: OktaEnv, okta: OktaStandIn,
                                                              statuses: tuple[int, ...], landed: bool) -> None:
    gid = okta.add_group("g")
    okta.add_user(ANA)
    await okta_provider_env.provider.get_user(ANA)
    assert await okta_provider_env.provider.member_of(ANA, [gid]) == set()  # her id is known: the faults hit the PUT
    for status in statuses:
        okta.fail_next(1, status=status, retry_after=0.01)
    with pytest.raises(ProviderError) as caught:
        await okta_provider_env.provider.add_member(gid, ANA)
    assert caught.value.may_have_landed is landed, caught.value


async def test_a_batch_that_gives_up_says_a_change_it_never_sent_was_not_made(entra: EntraEnv, graph: GraphStandIn
                                                                             ) -> None:
    """Two changes to one membership (the user named by mail and by user principal name) go in separate rounds, the
    second after the first is answered. When the first is throttled until the batch gives up, the second was never
    sent: it is a transient failure that did not land, not a change reported made (a removal recorded done while
    the member stays in the group)."""
    ref = graph.add_group("g")
    graph.add_user(ANA, upn="ana.upn@example.com")
    await entra.provider.get_user(ANA)
    await entra.provider.add_member(ref, ANA)
    graph.fail_inner_next(100, status=429, retry_after=0.01)  # every inner answer is throttled
    add, remove = await entra.provider.apply_batch([("add", ref, ANA), ("remove", ref, "ana.upn@example.com")])
    assert isinstance(add, ProviderError) and add.status == 429, add
    assert isinstance(remove, ProviderError) and remove.transient and not remove.may_have_landed, remove
    assert graph.member_emails(ref) == [ANA]
