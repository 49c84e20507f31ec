"""The spool and the handling process beside the SMTP daemon: the daemon only writes
files, a process of its own stores and handles them. It is replaced when it dies, ends
when `serve` does (even by SIGKILL) once the spool is empty, and a file is never stored
twice nor lost: not one whose removal a crash prevented, not a damaged one, not one that
came while the handling process was down.
"""

from __future__ import annotations

import json
import os
import signal
import time

from tests.conftest import (
    PROGRAM,
    WAIT,
    alive,
    compose,
    handler_pid,
    journal,
    listening,
    start_daemon,
    until,
    wire,
)


def test_a_killed_handling_process_is_replaced_and_nothing_waits_for_ever(home):
    daemon = start_daemon(home)
    try:
        first = handler_pid(home)
        os.kill(first, signal.SIGKILL)
        until(lambda: not alive(first), "the handling process to die")
        # Accepted while nothing handles: it waits in the spool.
        message = compose("ann@uni.example.edu", "HELP")
        daemon.send(message, sender="ann@uni.example.edu")
        assert [row["template"] for row in daemon.answers_to(message["Message-ID"])] == ["help"]
        second = handler_pid(home)
        assert second != first and alive(second)
        assert "the handling process stopped (exit -9); another starts in 1 s" in journal(home)
        assert daemon.mail_for(message["Message-ID"])[0]["To"] == "ann@uni.example.edu"
    finally:
        daemon.stop()
    assert daemon.process.returncode == 0
    until(lambda: not alive(second), "the replacement to stop with serve")


def test_when_serve_is_killed_the_handling_process_empties_the_spool_and_ends(home):
    daemon = start_daemon(home)
    pid = handler_pid(home)
    os.kill(pid, signal.SIGSTOP)  # held still, so the spool fills
    messages = [compose(f"p{n}@uni.example.edu", "HELP") for n in range(20)]
    try:
        with daemon.smtp() as client:
            for message in messages:
                client.sendmail(message["From"], [PROGRAM], wire(message))
        assert len(daemon.spooled()) == 20
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait()
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: not alive(pid), "the handling process to end without serve", timeout=30)
    rows = daemon.query("SELECT message_id, state FROM messages")
    assert sorted(row["message_id"] for row in rows) == sorted(m["Message-ID"] for m in messages)
    assert {row["state"] for row in rows} == {"handled"}
    assert daemon.spooled() == []
    # Their answers are queued; the next serve delivers them.
    assert daemon.query("SELECT count(*) AS n FROM outbox WHERE state = 'queued'")[0]["n"] == 20
    restarted = start_daemon(home)
    try:
        until(lambda: len(restarted.delivered()) == 20, "the answers to be delivered")
    finally:
        restarted.stop()


def test_a_stop_handles_what_the_spool_holds_first(home):
    daemon = start_daemon(home)
    pid = handler_pid(home)
    os.kill(pid, signal.SIGSTOP)
    messages = [compose(f"p{n}@uni.example.edu", "HELP") for n in range(10)]
    with daemon.smtp() as client:
        for message in messages:
            client.sendmail(message["From"], [PROGRAM], wire(message))
    daemon.process.terminate()
    # serve stops taking mail first, then closes the bell and waits for the handling.
    until(lambda: not listening(daemon.port), "serve to stop listening")
    os.kill(pid, signal.SIGCONT)
    assert daemon.process.wait(WAIT) == 0
    assert not alive(pid)
    assert daemon.spooled() == []
    assert len(daemon.query("SELECT * FROM messages WHERE state = 'handled'")) == 10
    # serve delivered the answers before it exited.
    assert sorted(m["To"] for m in daemon.delivered()) == sorted(m["From"] for m in messages)


def test_a_spool_file_already_stored_is_not_stored_again(home):
    """A crash between the commit and the file's removal leaves the file: the next
    handling process knows it by its name."""
    daemon = start_daemon(home)
    message = compose("ann@uni.example.edu", "HELP")
    daemon.send(message, sender="ann@uni.example.edu")
    row = daemon.handled(message["Message-ID"])
    daemon.stop()
    left = home / "spool" / "new" / row["spool"]
    envelope = {"from": "ann@uni.example.edu", "to": [PROGRAM], "received_at": row["received_at"]}
    left.write_bytes(json.dumps(envelope).encode() + b"\n" + row["raw"])
    daemon = start_daemon(home)
    try:
        daemon.idle()
        assert not left.exists()
        assert len(daemon.query("SELECT * FROM messages")) == 1
        assert len(daemon.query("SELECT * FROM outbox")) == 1
    finally:
        daemon.stop()


def test_a_damaged_spool_file_is_set_aside_and_the_rest_handled(home):
    spool = home / "spool"
    for folder in ("tmp", "new", "bad"):
        (spool / folder).mkdir(parents=True)
    (spool / "new" / "00000000000000000001.1.00000000").write_bytes(b"From: x\r\n\r\nno envelope")
    # Half-written by a daemon killed mid-write: old debris goes, a fresh file stays.
    old, fresh = spool / "tmp" / "old", spool / "tmp" / "fresh"
    old.write_bytes(b"{}")
    fresh.write_bytes(b"{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    daemon = start_daemon(home)
    try:
        message = compose("ann@uni.example.edu", "HELP")
        daemon.send(message, sender="ann@uni.example.edu")
        assert [a["template"] for a in daemon.answers_to(message["Message-ID"])] == ["help"]
        daemon.idle()  # its file is removed just after the commit
        assert [p.name for p in (spool / "bad").iterdir()] == ["00000000000000000001.1.00000000"]
        assert (
            (spool / "bad" / "00000000000000000001.1.00000000")
            .read_bytes()
            .endswith(b"no envelope")
        )
        assert "spool file 00000000000000000001.1.00000000 moved to" in journal(home)
        assert "has no envelope line" in journal(home)
        assert not old.exists() and fresh.exists()
        assert "1 half-written spool file(s) of a stopped daemon removed" in journal(home)
    finally:
        daemon.stop()


def test_two_handling_processes_never_run_at_once(home):
    """A handling process orphaned by a killed serve finishes before the next one takes
    over: the lock file says who holds it."""
    daemon = start_daemon(home)
    first = handler_pid(home)
    os.kill(first, signal.SIGSTOP)
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait()
    restarted = start_daemon(home)
    try:
        message = compose("ann@uni.example.edu", "HELP")
        restarted.send(message, sender="ann@uni.example.edu")
        until(
            lambda: "waiting for the handling process before this one to finish" in journal(home),
            "the new handling process to wait",
        )
        assert restarted.query("SELECT * FROM messages") == []
        assert len(restarted.spooled()) == 1
        os.kill(first, signal.SIGCONT)  # it sees serve gone, finds the spool empty, ends
        restarted.handled(message["Message-ID"])
        until(lambda: not alive(first), "the orphan to end")
        until(lambda: handler_pid(home) != first, "the new one to take over")
    finally:
        restarted.stop()
