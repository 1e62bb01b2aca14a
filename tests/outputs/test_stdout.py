"""The stdout output and the lifecycle every output shares."""

from __future__ import annotations

import io

import orjson
import pytest

from monitor.outputs.stdout import StdoutOutput
from tests.outputs.conftest import MakeAlert


async def test_alerts_are_json_lines(make_alert: MakeAlert) -> None:
    stream = io.BytesIO()
    out = StdoutOutput(stream=stream)
    await out.start()
    await out.send([make_alert(1).to_dict(), make_alert(2).to_dict()])
    await out.send([])
    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [make_alert(1).id, make_alert(2).id]
    assert orjson.loads(lines[0]) == make_alert(1).to_dict()


async def test_text_streams_get_the_same_lines(make_alert: MakeAlert) -> None:
    buffer = io.BytesIO()
    text = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    text.write("before\n")
    out = StdoutOutput(stream=text)
    await out.start()
    await out.send([make_alert(3).to_dict()])
    assert buffer.getvalue().splitlines() == [b"before", make_alert(3).to_json()]
    plain = io.StringIO()
    out2 = StdoutOutput(stream=plain)
    await out2.start()
    await out2.send([make_alert(4).to_dict()])
    assert plain.getvalue() == make_alert(4).to_json().decode() + "\n"


async def test_lifecycle_start_twice_raises_stop_is_idempotent(make_alert: MakeAlert) -> None:
    out = StdoutOutput(stream=io.BytesIO())
    with pytest.raises(RuntimeError, match="not started"):
        await out.send([make_alert().to_dict()])
    await out.stop()  # never started: nothing to do, no error
    out = StdoutOutput(stream=io.BytesIO())
    await out.start()
    with pytest.raises(RuntimeError, match="already started"):
        await out.start()
    await out.flush()
    await out.stop()
    await out.stop()
    with pytest.raises(RuntimeError, match="not started"):
        await out.send([make_alert().to_dict()])
    with pytest.raises(RuntimeError, match="already started"):
        await out.start()  # a stopped output is not restarted
