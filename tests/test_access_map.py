"""The HTML access map, tested as a person would use it: rendered from real reports, opened in headless
Chromium, counted, filtered, and attacked with a hostile alias. Also the map documents themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.drift import HEADINGS, DriftReport, Scope
from reconciler.interface import access_map
from reconciler.interface.render import drift_html
from tests.conftest import CliResult

Run = Callable[..., CliResult]
HOSTILE = '</script><img src=x onerror="document.title=1">'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _cells_in(report: dict[str, Any]) -> set[tuple[str, str]]:
    kinds = ["in_sync", *(k for k in access_map.DRIFT_STATES)]
    return {(c["user"], c["target"]) for kind in kinds for c in report.get(kind, [])}


def test_the_map_holds_exactly_the_reports_cells_and_counts() -> None:
    report = _large_report(users=120, groups=6, targets=40)
    data = report.to_dict()
    document = access_map.drift_map(data, HEADINGS)
    cells = {(document["users"][u][0], document["targets"][t][0]) for u, t, _, _ in document["cells"]}
    assert cells == _cells_in(data)
    counts = {text: count for text, count, _ in document["summary"]}
    assert counts["granted as policy says"] == len(data["in_sync"])
    assert counts[HEADINGS["unexpected"]] == len(data["unexpected"])
    assert {u[0] for u in document["users"]} == {u["id"] for u in data["users"]}


def test_data_inside_the_page_cannot_close_its_script_element() -> None:
    report = _large_report(users=3, groups=1, targets=2, account=HOSTILE)
    page = drift_html(report)
    assert HOSTILE not in page and "</script><img" not in page
    embedded = page.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    assert HOSTILE in json.loads(embedded)["users"][0][1]


def test_plan_and_access_maps_come_from_their_json() -> None:
    plan = {
        "target": "demo",
        "created_at": "2026-12-03T00:00:00Z",
        "names": {"u1": "ann"},
        "touched_state": {"u1": ["llm_cube:a"], "u2": ["llm_cube:a", "theme:t"]},
        "batches": [
            {
                "operation": "grant",
                "user_ids": ["u1"],
                "llm_cubes": ["a", "b"],
                "llm_cube_themes": [],
                "expire_day": "2099-12-31",
                "cube_ids": [],
            },
            {
                "operation": "revoke",
                "user_ids": ["u2"],
                "llm_cubes": ["a"],
                "llm_cube_themes": ["z"],
                "expire_day": None,
                "cube_ids": [],
            },
        ],
        "summary": {"calls": 2},
    }
    document = access_map.plan_map(plan)
    states = {(document["users"][u][0], document["targets"][t][0]): s for u, t, s, _ in document["cells"]}
    assert states == {
        ("u1", "llm_cube:a"): "expiry",
        ("u1", "llm_cube:b"): "grant",
        ("u2", "llm_cube:a"): "revoke",
        ("u2", "theme:t"): "ok",
    }
    assert [row[1] for row in document["summary"]] == [1, 1, 1, 2]
    lines = [
        {
            "user": "u1",
            "account": "ann",
            "target": "llm_cube:a",
            "target_name": "A",
            "state": "granted",
            "expiry": "2099-12-31",
            "why": "sales (grant at p.yaml:3)",
        }
    ]
    lines.append({**lines[0], "user": "u2", "state": "not live", "expiry": "unknown"})
    lines.append({**lines[0], "user": "u3", "state": "unmanaged", "why": "target not managed"})
    who = access_map.access_map(lines, "Who can query a:", "demo", "now")
    states = {who["users"][u][0]: state for u, _, state, _ in who["cells"]}
    assert states == {"u1": "ok", "u3": "unmanaged"}  # a grant kept only while live, and not live, is no access
    assert who["reasons"][0] == "sales (grant at p.yaml:3); 2099-12-31"
    assert [row[:2] for row in who["summary"]] == [["granted", 1], ["not live", 1], ["unmanaged", 1]]


def _large_report(users: int, groups: int, targets: int, account: str = "") -> DriftReport:
    """A tenant of `users` in `groups` policy groups, each group granted a slice of `targets`; some drift."""
    names: dict[str, str] = {}
    scope_users: dict[str, str] = {}
    in_sync: list[tuple[str, str]] = []
    why: dict[tuple[str, str], str] = {}
    findings: dict[str, list[tuple[str, str, str]]] = {k: [] for k in HEADINGS}
    target_ids = [f"llm_cube:c{i:03d}" for i in range(targets)]
    for i in range(users):
        user, group = f"u{i:05d}", f"team-{i % groups:02d}"
        names[user] = account or f"person{i}"
        scope_users[user] = group
        mine = target_ids[(i % groups) * 3 :][:30] or target_ids[:1]
        for j, target in enumerate(mine):
            cell = (user, target)
            why[cell] = f"policies/teams.yaml:{i % groups + 2}"
            if i % 50 == 0 and j == 0:
                findings["missing"].append((user, target, "expires 2099-12-31"))
            else:
                in_sync.append(cell)
        if i % 70 == 0:
            findings["unexpected"].append((user, target_ids[-1], ""))
    for target in target_ids:
        names[target] = f"Cube {target[-3:]}"
    cells = {(u, t) for u, t in in_sync} | {(u, t) for found in findings.values() for u, t, _ in found}
    scope = Scope("2026-12-03T00:00:00Z", scope_users, sorted({t for _, t in cells}), sorted(in_sync), why)
    return DriftReport("demo", {k: sorted(v) for k, v in findings.items()}, names, [], lambda: scope)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); CI installs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    # self-contained: nothing but the file itself is ever requested
    page.on(
        "request", lambda request: errors.append(f"fetched {request.url}") if request.url != path.as_uri() else None
    )
    page.goto(path.as_uri())
    page.wait_for_selector("#map tbody tr", timeout=15_000)
    return page, errors


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in its own process: the browser's driver holds this one's event loop."""
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=folder, capture_output=True, text=True)


def test_the_demo_drift_map_in_a_browser(browser: Any, workspace: Path, tmp_path: Path) -> None:
    org = workspace / "examples" / "demo-org.yaml"
    org.write_text(org.read_text().replace("account: heidi", f"account: 'heidi{HOSTILE}'"))
    assert _cli(workspace, "apply", "--auto-approve").returncode == 0
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))
    # the JSON and the map from one run's reads, as the scheduled job writes them
    made = _cli(workspace, "drift", "--format", "json", "--out", "report.json", "--html", "report.html")
    assert made.returncode == 2, made.stderr
    data = json.loads((workspace / "report.json").read_text())
    page, errors = _open(browser, workspace / "report.html")
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    # every cell of the report is a coloured, symbolled cell of the matrix
    assert page.locator("#map td[data-state]").count() == len(_cells_in(data))
    assert page.locator("#map td.grant").count() == len(data["missing"]) == 2
    rows = page.eval_on_selector_all(
        "#summary div", "ds => ds.map(d => [d.firstChild.textContent, d.lastChild.textContent])"
    )
    summary = {text: int(count.replace(",", "")) for count, text in rows}
    assert summary["granted as policy says"] == len(data["in_sync"])
    assert summary[HEADINGS["missing"]] == len(data["missing"]) and summary[HEADINGS["protected"]] == len(
        data["protected"]
    )
    assert f"{len(data['users'])} users and {len(data['targets'])} targets in scope" in page.inner_text("#meta")
    # the hostile account name is text in its row header, and ran nothing
    assert page.locator("#map th.row", has_text="heidi</script>").count() == 1
    assert page.locator("img").count() == 0 and page.title().startswith("Access map")
    # hover text names the policy line that explains a cell
    titles = page.locator("#map td.ok").evaluate_all("cells => cells.map(c => c.title)")
    assert any("(grant at policies/" in t or "policies/" in t for t in titles)
    # filtering by user leaves that user's row
    page.fill("#f-user", "ivan")
    assert page.locator("#map th.row").all_inner_texts() == ["u-ivan (ivan)"]
    assert not errors, errors


def test_a_2000_by_200_report_stays_usable(browser: Any, tmp_path: Path) -> None:
    report = _large_report(users=2000, groups=20, targets=200)
    data = report.to_dict()
    path = tmp_path / "large.html"
    path.write_text(drift_html(report))
    assert path.stat().st_size < 4_000_000  # a reasonable file for 60,000 cells
    page, errors = _open(browser, path)
    page.screenshot(path=str(tmp_path / "large.png"))
    # past the row limit, rows are the 20 groups, and the page says so
    assert "2000 users: rows are their groups" in page.inner_text("#aggregate")
    assert page.locator("#map th.row").count() == 20
    cell_texts = page.locator("#map td[data-state]").count()
    assert cell_texts > 0
    # a group's users come back when filtered to it
    page.select_option("#f-group", "team-03")
    assert page.locator("#map th.row").count() == 100 and not page.is_visible("#aggregate")
    in_group = [
        c
        for c in data["in_sync"] + data["missing"] + data["unexpected"]
        if c["user"] in {u["id"] for u in data["users"] if u["group"] == "team-03"}
    ]
    assert page.locator("#map td[data-state]").count() == len({(c["user"], c["target"]) for c in in_group})
    assert not errors, errors


def test_plan_and_who_can_maps_render(browser: Any, workspace: Path) -> None:
    assert _cli(workspace, "apply", "--auto-approve").returncode == 0
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))
    planned = _cli(workspace, "plan", "--format", "html")
    assert planned.returncode == 0, planned.stderr
    (workspace / "plan.html").write_text(planned.stdout)
    page, errors = _open(browser, workspace / "plan.html")
    summary = json.loads(_cli(workspace, "plan", "--format", "json").stdout)["summary"]
    # ivan's new cells, and his contractor grant whose expiry the statement sets again
    assert page.locator("#map td.grant").count() == 2 and page.locator("#map td.expiry").count() == 1
    assert summary["grant_cells"] == 3
    assert page.locator("#map td.revoke").count() == summary["revoke_cells"]
    who = _cli(workspace, "who-can", "sales", "--format", "html")
    assert who.returncode == 0, who.stderr
    (workspace / "who.html").write_text(who.stdout)
    page, more = _open(browser, workspace / "who.html")
    assert page.locator("#map td[data-state]").count() == len(
        json.loads(_cli(workspace, "who-can", "sales", "--format", "json").stdout)
    )
    assert not errors and not more, errors + more
