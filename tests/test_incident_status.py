"""The one owner of incident status: the whole table enumerated, compare-and-set, events, one writer."""

from __future__ import annotations

import ast
import itertools
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from orchestrator.core.errors import IllegalIncidentTransition
from orchestrator.core.states import IncidentStatus
from orchestrator.db.models import Incident, IncidentEventRow
from orchestrator.incidents import status
from orchestrator.incidents.status import LEGAL_TRANSITIONS
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import add_component

S = IncidentStatus
AT = datetime(2026, 1, 1, 12, tzinfo=UTC)
ALL_PAIRS = list(itertools.product(S, S))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def incident_in(db):
    """Make an incident and force it into a status (raw SQL: the test's setup, not a move)."""
    with LoopbackHTTPServer("ok") as server:
        cid = add_component(db, "web", server.url, plan=None)

    def make(start: S) -> int:
        with db.write() as session:
            incident = status.create(session, component_id=cid, component_name="web", at=AT, reason="down")
            session.execute(update(Incident).where(Incident.id == incident.id).values(status=start.value))
            return incident.id

    return make


def test_the_table_is_what_the_lifecycle_needs() -> None:
    assert (S.RESOLVED, S.OPEN) in LEGAL_TRANSITIONS  # reopen
    assert (S.RECOVERING, S.OPEN) in LEGAL_TRANSITIONS  # a run ended without a decision
    assert all(to is not S.RESOLVED or frm is not S.RESOLVED for frm, to in LEGAL_TRANSITIONS)
    assert not any(frm is S.RESOLVED and to is not S.OPEN for frm, to in LEGAL_TRANSITIONS)  # closed stays closed


@pytest.mark.parametrize(("frm", "to"), [p for p in ALL_PAIRS if p in LEGAL_TRANSITIONS],
                         ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS if (a, b) in LEGAL_TRANSITIONS])
def test_every_legal_move_is_made_with_its_event(db, incident_in, frm: S, to: S) -> None:
    iid = incident_in(frm)
    with db.write() as session:
        assert status.transition(session, iid, frm, to, now=AT, reason="because")
    with db.read() as session:
        incident = session.get(Incident, iid)
        last = session.scalars(select(IncidentEventRow).where(IncidentEventRow.incident_id == iid)
                               .order_by(IncidentEventRow.id.desc())).first()
    assert (incident.status, incident.status_reason) == (to.value, "because")
    assert (last.from_status, last.to_status, last.kind, last.reason) == (frm.value, to.value,
                                                                          status.kind_of(frm, to), "because")


@pytest.mark.parametrize(("frm", "to"), [p for p in ALL_PAIRS if p not in LEGAL_TRANSITIONS],
                         ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS if (a, b) not in LEGAL_TRANSITIONS])
def test_every_illegal_move_is_refused_naming_it_and_changes_nothing(db, incident_in, frm: S, to: S) -> None:
    iid = incident_in(frm)
    with pytest.raises(IllegalIncidentTransition, match=f"{frm.value} -> {to.value}"), db.write() as session:
        status.transition(session, iid, frm, to, now=AT)
    with db.read() as session:
        assert session.get(Incident, iid).status == frm.value


def test_compare_and_set_loses_when_the_status_moved_meanwhile(db, incident_in) -> None:
    iid = incident_in(S.OPEN)
    with db.write() as session:  # someone else got there first
        assert status.transition(session, iid, S.OPEN, S.RECOVERING, now=AT)
    with db.write() as session:  # a writer that still believes it is open
        assert not status.transition(session, iid, S.OPEN, S.BLOCKED, now=AT, reason="late")
    with db.read() as session:
        assert session.get(Incident, iid).status == "recovering"
        kinds = session.scalars(select(IncidentEventRow.kind).where(IncidentEventRow.incident_id == iid)).all()
    assert kinds == ["opened", "recovering"]  # the lost move wrote no event


def test_create_writes_an_open_row_and_its_opened_event(db, incident_in) -> None:
    iid = incident_in(S.OPEN)
    with db.read() as session:
        [event] = session.scalars(select(IncidentEventRow).where(IncidentEventRow.incident_id == iid)).all()
    assert (event.kind, event.to_status, event.reason) == ("opened", "open", "down")


def _status_writers(package: Path) -> list[str]:
    """Places outside incidents/status.py that write a ``status``: an assignment to ``X.status`` (journal
    rows' ``entry.status`` and an object's own ``self.status`` excepted), ``Incident(..., status=...)``,
    or ``update(Incident)…values(status=``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "status.py" and path.parent.name == "incidents":
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if (isinstance(t, ast.Attribute) and t.attr == "status"
                            and not (isinstance(t.value, ast.Name) and t.value.id in ("entry", "self"))):
                        found.append(f"{path.name}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Incident"
                    and any(k.arg == "status" for k in node.keywords)):
                found.append(f"{path.name}:{node.lineno}")
        found += [f"{path.name}: update" for _ in re.finditer(r"update\(Incident\)[^;]*?\.values\(status=", text)]
    return found


def test_nothing_but_the_status_module_writes_incident_status() -> None:
    assert _status_writers(ROOT / "orchestrator") == []
