"""A page link is followed with the provider's token only on the provider's own host (scheme, host and port of
the configured Graph or Okta URL): Graph's `@odata.nextLink` or Okta's `Link: rel="next"` naming another host is
refused with a clear error, and that host receives nothing, so a reply can never make the bot send its bearer
token elsewhere. The listing is not cut short silently either: the call fails, as a failed page does."""

from __future__ import annotations

import pytest

from handlers.ports import ProviderError
from tests.standins.okta import OktaStandIn


async def test_a_next_page_on_another_host_is_not_followed(provider_env) -> None:
    env = provider_env
    if env.standin is None:
        pytest.skip("this provider has no remote side")
    group = env.seed_group("sg-paged")
    for i in range(7):  # more than one page at the stand-in's page size
        env.seed_user(f"p{i}@example.com", name=f"P {i}", groups=(group,))
    assert len(await env.provider.list_members(group)) == 7  # the stand-in's own links: followed

    with OktaStandIn() as elsewhere:
        env.standin.next_base = elsewhere.url
        try:
            with pytest.raises(ProviderError) as failed:
                await env.provider.list_members(group)
        finally:
            env.standin.next_base = None
        assert "another host" in str(failed.value) and not failed.value.transient, failed.value
        assert elsewhere.requests == [], [r.path for r in elsewhere.requests]
    assert len(await env.provider.list_members(group)) == 7
