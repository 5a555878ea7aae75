"""Group members are listed in Graph's largest pages (`$top=999`; its default is 100): a review's live check, drift
and every listing of a group of 1,500 members take 2 requests instead of 15. A reviewer's decision re-reads the
group it decides in, so in a group of 10,000 this is 11 requests a click instead of 100."""

from __future__ import annotations

from provisioning.entra import EntraProvider
from tests.providers.conftest import FAST
from tests.standins.graph import GraphStandIn


async def test_members_are_listed_in_pages_of_999(graph: GraphStandIn) -> None:
    graph.page_size, graph.max_top = 100, 999  # as Graph pages group members
    try:
        gid = graph.add_group("sg-large")
        for i in range(1500):
            graph.add_user(f"m{i:04d}@example.com")
            graph.add_member(gid, f"m{i:04d}@example.com")
        provider = EntraProvider(tenant_id=graph.tenant, client_id=graph.client_id, client_secret=graph.client_secret,
                                 graph_url=graph.graph_url, authority_url=graph.url, **FAST)
        try:
            for listing in (provider.list_members, provider.review_members, provider.drift_members):
                before = len(graph.received("GET", "/members"))
                assert len(await listing("sg-large")) == 1500
                pages = graph.received("GET", "/members")[before:]
                assert len(pages) == 2, [r.path for r in pages]
        finally:
            await provider.close()
    finally:
        graph.page_size, graph.max_top = 2, None
