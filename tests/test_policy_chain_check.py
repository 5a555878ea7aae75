"""`accessbot policy check` finds approval chains that one-person-once leaves short (SPEC §2.1).

One person counts once per request and the requester never counts: a chain whose steps draw on the same few
people can never finish (an error, with the line of the step where it breaks), or can finish except when one of
those people asks (a warning naming them). The requester's manager is taken for someone the policy does not name.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import ROOT, cli, copy_examples

GROUPS = ("  leads: [dana.dba@example.com, sam.sec@example.com]\n"
          "  duo: [ana@example.com, ben@example.com]\n"
          "  trio: [ana@example.com, ben@example.com, cy@example.com]\n"
          "  five: [ana@example.com, ben@example.com, cy@example.com, di@example.com, ed@example.com]\n")
ANALYTICS_CHAIN = "    approval:\n      - {user: dana.dba@example.com}\n"


def policy_with(tmp_path: Path, chain: str, exception: str = "") -> tuple[Path, int]:
    """The example policy with more approver groups, the analytics-read profile approved by ``chain`` (steps
    separated by ``;``) and, when given, an exception chain (a flow list); and the line of the first step of the
    exception chain when given, else of the chain."""
    path = copy_examples(tmp_path).policy
    text = path.read_text()
    assert "  platform: [pat.lead@example.com]\n" in text and text.count(ANALYTICS_CHAIN) == 1
    text = text.replace("  platform: [pat.lead@example.com]\n", "  platform: [pat.lead@example.com]\n" + GROUPS)
    steps = "".join(f"      - {s}\n" for s in chain.split(";"))
    extra = f"    exception:\n      approval: [{exception}]\n      max_duration: 7d\n" if exception else ""
    text = text.replace(ANALYTICS_CHAIN, "    approval:\n" + steps + extra)
    path.write_text(text)
    at = text.index(steps, text.index("id: analytics-read"))
    if exception:  # a flow list: every step on the line of `approval: [`
        at = text.index("      approval: [", at)
    return path, text[:at].count("\n") + 1


def check(path: Path) -> tuple[int, str, str]:
    result = cli("policy", "check", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def test_a_person_needed_by_two_all_of_steps_makes_the_chain_unfinishable(tmp_path: Path) -> None:
    """Step 2 needs dana, step 3 needs dana and sam: dana counts once, so no request can ever be approved."""
    path, first = policy_with(tmp_path, "manager;{all_of: dba};{all_of: leads}")
    code, out, err = check(path)
    assert code == 1 and "OK" not in out, out + err
    assert (f"line {first + 2}: profiles[3].approval[2]: profile 'analytics-read': the approval chain can never "
            "finish at step 3: all_of leads: step 2 (all_of dba) and step 3 (all_of leads) need at least 4 approvals "
            "from only 3 people (dana.dba@example.com, dev.dba@example.com, sam.sec@example.com), and one person "
            "counts once per request: no request can be approved") in err, err
    assert "1 error(s)" in err


def test_an_n_of_step_left_short_by_an_earlier_all_of_is_an_error(tmp_path: Path) -> None:
    """`all_of: duo` takes two of the trio; `2 of trio` is left with one."""
    path, first = policy_with(tmp_path, "{all_of: duo};{n_of: 2, from: trio}")
    code, _, err = check(path)
    assert code == 1
    assert f"line {first + 1}: profiles[3].approval[1]: profile 'analytics-read': the approval chain can never " \
           "finish at step 2: 2 of trio" in err, err


def test_the_same_single_person_twice_is_an_error(tmp_path: Path) -> None:
    """Two manager steps ask the same person (whoever it is); two steps naming the owner likewise."""
    path, first = policy_with(tmp_path, "manager;{any_of: duo};manager")
    code, _, err = check(path)
    assert code == 1 and f"line {first + 2}: profiles[3].approval[2]" in err, err
    assert "step 1 (manager) and step 3 (manager) need at least 2 approvals from only 1 person (the requester's " \
           "manager)" in err, err
    path, first = policy_with(tmp_path, "owner;{user: dana.dba@example.com}")  # analytics-read's owner is dana
    code, _, err = check(path)
    assert code == 1 and f"line {first + 1}: profiles[3].approval[1]" in err, err


def test_the_exception_chain_is_checked_too(tmp_path: Path) -> None:
    path, first = policy_with(tmp_path, "manager", exception="{any_of: security}, {all_of: security}")
    code, _, err = check(path)
    assert code == 1
    assert f"line {first}: profiles[3].exception.approval[1]: profile 'analytics-read': the exception chain " \
           "can never finish at step 2: all_of security: step 1 (any_of security) and step 2 (all_of security) need " \
           "at least 3 approvals from only 2 people" in err, err


def test_a_chain_that_looks_short_but_works_for_everyone_passes(tmp_path: Path) -> None:
    """`all_of: duo` takes ana and ben, who are also among the five; cy, di and ed are left for `2 of five`,
    whoever of them asks."""
    path, _ = policy_with(tmp_path, "manager;{all_of: duo};{n_of: 2, from: five};owner")
    code, out, err = check(path)
    assert code == 0 and "OK" in out and "warning" not in out + err, out + err


def test_a_chain_that_fails_only_when_one_of_its_approvers_asks_is_a_warning(tmp_path: Path) -> None:
    """`any_of: duo` then `2 of trio` finishes (ana, then ben and cy), but not when one of the trio asks: they never
    approve their own request, and the two others cannot count for both steps. Each step alone has enough people,
    so this is not the plain rule that the requester cannot approve; policy check warns, naming them."""
    path, first = policy_with(tmp_path, "{any_of: duo};{n_of: 2, from: trio}")
    code, out, err = check(path)
    assert code == 0 and "1 warning(s)" in out, out + err
    assert (f"line {first + 1}: profiles[3].approval[1]: warning: profile 'analytics-read': the chain cannot "
            "finish at step 2 (2 of trio) when ana@example.com, ben@example.com, cy@example.com ask: a requester "
            "never approves their own request and one person counts once per request (when ana@example.com asks, "
            "step 1 (any_of duo) and step 2 (2 of trio) need at least 3 approvals from only 2 people "
            "(ben@example.com, cy@example.com)); other requesters are not affected") in err, err


def test_a_requester_who_is_a_steps_only_approver_is_not_warned_about(tmp_path: Path) -> None:
    """`user: dana` fails when dana asks whatever the other steps: the request names the step; no warning."""
    path, _ = policy_with(tmp_path, "manager;{user: dana.dba@example.com};{n_of: 2, from: duo}")
    code, out, err = check(path)
    assert code == 0 and "warning" not in out + err, out + err


def test_the_example_policy_stays_clean() -> None:
    code, out, err = check(ROOT / "examples" / "policy.yaml")
    assert code == 0 and "OK" in out and "warning" not in out + err and not err, out + err


def test_the_check_judges_a_chain_as_a_request_does() -> None:
    """The check's matching (augmenting paths between steps, for groups of any size) finds the same first
    unsatisfiable step as the one a request is refused at (handlers/chains.py), over many small chains."""
    import random

    from handlers.chain_check import _first_short, _resolved
    from handlers.chains import first_unsatisfiable
    from handlers.policy import Step

    people = [f"p{i}@example.com" for i in range(5)]
    rng = random.Random(7)
    for _ in range(3000):
        groups = {f"g{j}": tuple(rng.sample(people, rng.randint(1, 4))) for j in range(3)}
        steps = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["manager", "owner", "any_of", "all_of", "n_of", "user"])
            group = rng.choice(list(groups))
            steps.append(Step(kind, group=group, n=rng.randint(1, len(groups[group])), user=rng.choice(people))
                         if kind in ("any_of", "all_of", "n_of", "user") else Step(kind))
        requester = rng.choice([None, *people])
        chain = _resolved(steps, rng.choice(people), groups, requester)
        short, bad = _first_short(chain), first_unsatisfiable(chain)
        assert (short[0].index if short else None) == (bad.index if bad else None), (steps, groups, requester)
