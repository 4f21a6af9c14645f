"""The WhatsApp bench's known infringers (scripts/bench_whatsapp.py, `seed_known`) are what a
notice campaign leaves: the service matches their messages to a notified case, and the Rasa
path's sender ids name those same conversations."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel, Conversation
from api.conversations.service import get_open_conversation, sender_id_for
from api.db import unit_of_work
from tests.unit.test_bench_attribution import bench

pytestmark = pytest.mark.integration


async def test_known_infringers_are_matched_to_their_notified_case(database_url: str) -> None:
    phones = [f"+55119{n}" for n in random.sample(range(60_000_000, 100_000_000), 3)]
    senders = await bench().seed_known(database_url, phones)
    assert len(senders) == 3
    async with unit_of_work() as session:
        seen = []
        for phone, sender in zip(phones, senders, strict=True):
            found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
            assert found.case is not None and found.case.status is CaseStatus.NOTIFICADO
            conversation = await get_open_conversation(
                session, channel=Channel.WHATSAPP, contact_point_id=found.contact.id
            )
            assert conversation is not None and conversation.case_id == found.case.id
            assert sender == sender_id_for(conversation)
            seen.append(found.case.brand_id)
        # One brand per call: the campaign's.
        assert len(set(seen)) == 1
        cases = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Case)
            .join(Conversation, Conversation.case_id == Case.id)
            .where(Conversation.id.in_([int(s.removeprefix("conv-")) for s in senders]))
        )
    assert cases == 3


def test_the_share_of_known_infringers_needs_the_database() -> None:
    import argparse

    args = argparse.Namespace(infringers=50, known_share=0.8, database_url=None)
    assert bench().known_count(args) == 0
    args.database_url = "postgresql+asyncpg://bench"
    assert bench().known_count(args) == 40
    args.known_share = 1.5
    assert bench().known_count(args) == 50


def test_the_seed_runs_in_a_process_of_its_own(database_url: str) -> None:
    """As `make bench` runs it: a fresh interpreter that imported nothing of the service."""
    import subprocess
    import sys

    from tests.unit.test_bench_attribution import ROOT

    phone = f"+55119{random.randrange(60_000_000, 100_000_000)}"
    code = (
        "import asyncio, sys\n"
        "sys.path.insert(0, 'scripts')\n"
        "import bench_whatsapp as b\n"
        "print(asyncio.run(b.seed_known(sys.argv[1], [sys.argv[2]]))[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, database_url, phone],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("conv-")
