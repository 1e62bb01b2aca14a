"""No input makes a format raise: every record is events, a skip, or an invalid reason."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.inputs import FORMATS, Skip, get_format

SEEDS = [
    b'2024-05-01 12:00:00.123 UTC,"a","b",1,"h:1",s,1,"SELECT",x,y,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,TABLE,p.t,q,<none>,1",,,,,,,,,"",b,,0',
    b"2024-05-01 12:00:00.123 UTC [1] 42501 a@b 1.2.3.4(5) psql: ERROR:  permission denied for table t",
    b"20130927 01:28:08,h,root,localhost,1,6,QUERY,test,'select 1',0",
    b'{"Records": [{"eventTime": "2020-01-01T00:00:00Z", "eventName": "GetObject", "userIdentity": 1}]}',
    b'{"class_uid": 6005, "time": 1, "actor": []}',
    b'{"audit_record": {"timestamp": 1}}',
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(FORMATS)),
    st.one_of(st.binary(max_size=300), st.sampled_from(SEEDS).flatmap(
        lambda s: st.integers(0, len(s)).map(lambda n: s[:n]))),
    st.booleans(),
)  # fmt: skip
def test_no_input_raises(name: str, data: bytes, final: bool) -> None:
    fmt = get_format(name)
    records, used = fmt.frame(data, final)
    assert 0 <= used <= len(data)
    for rec in records:
        for r in fmt.decode(rec):
            assert isinstance(r, Skip | dict)
            if isinstance(r, dict) and name != "jsonl":  # jsonl's ts is the Decoder's to judge
                assert "ts" in r
