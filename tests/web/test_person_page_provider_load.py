"""A person page asks the identity provider about the one person, never for a listing of every managed group.

Anyone signed in may reload their own page as often as they like; the provider's rate limits are shared with
provisioning and the sweeps. People and groups are at Entra (the Graph stand-in, pages of two), so listing a
group of 40 costs 20 requests there: the page must cost the same however large the groups grow, and still say
what is true the moment a membership changes.
"""

from __future__ import annotations

import re

from tests.standins.graph import GraphStandIn
from tests.support import provider_policy
from tests.test_leaver_lookups import graph  # noqa: F401  (fixture: the Graph stand-in over TLS)
from tests.web.conftest import serve_dashboard

ANN, PAT = "ann@example.com", "pat.lead@example.com"
ROW = re.compile(r"<tr><td>entra/([^<]+)</td>.*?<span class=\"state [^\"]*\">([^<]+)</span>", re.S)


def crowd(graph: GraphStandIn, groups: list[str], start: int, n: int) -> None:  # noqa: F811
    for i in range(start, start + n):
        graph.add_user(f"crowd{i}@example.com", department="Sales")
        for gid in groups:
            graph.add_member(gid, f"crowd{i}@example.com")


async def test_person_page_cost_does_not_grow_with_the_groups(sqlite_url, tmp_path, graph) -> None:  # noqa: F811
    tools, builds = graph.add_group("sg-tools"), graph.add_group("sg-builds")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT)
    crowd(graph, [tools, builds], 0, 40)
    policy = provider_policy("entra", tools, version="page-load-1") + "\n".join([
        "  - id: builds", "    title: Builds", "    owner: pat.lead@example.com", "    provider: entra",
        f"    group: {builds}", "    duration: {default: 1h, max: 8h}", "    approval: [owner]", ""])
    async with serve_dashboard(sqlite_url, tmp_path, policy=policy, identity="entra",
                               entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                               entra_client_secret=graph.client_secret, graph_url=graph.graph_url,
                               authority_url=graph.url) as h:
        reply = await h.say(ANN, "request tools for 2h")
        assert reply.ok and reply.request is not None and reply.request.state == "active", reply.text
        graph.add_member(builds, ANN)  # a membership nobody granted
        cookie = await h.sign_in(ANN)

        async def view() -> tuple[dict[str, str], list[str]]:
            before = len(graph.received())
            page = await h.get(f"/dashboard/people/{ANN}", cookie=cookie)
            assert page.status == 200, page.text
            table = page.text[page.text.index('id="memberships"'):]
            table = table[:table.index("</table>")]
            calls = [r.path for r in graph.received()[before:] if r.path.startswith("/v1.0/")]
            return dict(ROW.findall(table)), calls

        shown, calls = await view()
        assert shown == {tools: "granted", builds: "drift"}
        assert not [c for c in calls if c.endswith("/members")], calls  # no group listed
        per_view = len(calls)
        assert per_view <= 10, calls  # the person, their manager, their groups: looked up once a view

        for _ in range(10):
            shown, calls = await view()
            assert shown == {tools: "granted", builds: "drift"} and len(calls) == per_view, calls
        crowd(graph, [tools, builds], 40, 60)  # the groups grow to 101: the page costs the same
        shown, calls = await view()
        assert shown == {tools: "granted", builds: "drift"} and len(calls) == per_view, calls

        # a change at the provider shows on the next view: nothing is remembered between views
        with graph.lock:
            graph.members[builds].remove(graph.user_id(ANN))
            graph.members[tools].remove(graph.user_id(ANN))
        shown, _ = await view()
        assert shown == {tools: "provisioning", builds: "not a member"}
        graph.add_member(builds, ANN)
        shown, _ = await view()
        assert shown == {tools: "provisioning", builds: "drift"}
