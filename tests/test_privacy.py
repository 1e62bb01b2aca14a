"""Masking: card numbers and e-mails never leave the daemon; order ids do."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from monitor.engine.alert import Alert, alert_id
from monitor.inputs import get_format
from monitor.privacy import Masker, PrivacyConfig, luhn_ok
from monitor.timeparse import parse_ts
from tests.support.engine import T0, engine, ev, run

M = Masker()


def luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111111111111111 used", "card [card ****1111] used"),
        ("card 4111 1111 1111 1111.", "card [card ****1111]."),
        ("4111-1111-1111-1111", "[card ****1111]"),
        ("amex 3782 822463 10005 ok", "amex [card ****0005] ok"),
        ("order 4111111111111112", "order 4111111111111112"),  # fails Luhn
        ("id 41111111111111111111111", "id 41111111111111111111111"),  # 23 digits: not a card
        ("phone +1 555 123 4567", "phone +1 555 123 4567"),
        ("mail jane.doe+x@example.co.uk now", "mail j***@example.co.uk now"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_text(text: str, expected: str) -> None:
    assert M.text(text) == expected


separator = st.sampled_from(["", " ", "-"])
no_digits = st.text(st.characters(blacklist_categories=["Nd"], blacklist_characters="-"), max_size=30)


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    n = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=n - 1, max_size=n - 1))
    digits = luhn_complete(body)
    written = digits[0] + "".join(draw(separator) + d for d in digits[1:])
    return digits, written


@given(card_numbers(), no_digits, no_digits)
def test_any_luhn_valid_number_in_text_is_masked(card: tuple[str, str], before: str, after: str) -> None:
    digits, written = card
    out = M.text(f"{before} {written} {after}")
    assert written not in out
    assert f"[card ****{digits[-4:]}]" in out
    assert M.text(out) == out  # idempotent


@given(st.text("0123456789", min_size=13, max_size=19), no_digits)
def test_non_luhn_digit_runs_stay(run: str, after: str) -> None:
    if luhn_ok(run):
        run = run[:-1] + str((int(run[-1]) + 1) % 10)  # one off: never Luhn-valid
    assert f"order {run} " in M.text(f"order {run} {after}")


@given(st.text(max_size=80))
def test_masking_is_idempotent(text: str) -> None:
    once = M.text(text)
    assert M.text(once) == once


@given(st.from_regex(r"[a-z][a-z0-9.]{0,10}@[a-z]{1,8}\.(com|org|de)", fullmatch=True), no_digits)
def test_emails_are_masked(email: str, after: str) -> None:
    out = M.text(f"from {email} {after}")
    assert email not in out
    assert f"{email[0]}***@{email.split('@')[1]}" in out


def test_switches_turn_masking_off() -> None:
    m = Masker(PrivacyConfig(mask_cards=False, mask_emails=False))
    assert m.text("4111111111111111 a@b.com") == "4111111111111111 a@b.com"


def test_mask_fields_blank_nested_and_flat_paths() -> None:
    m = Masker(PrivacyConfig(mask_fields=("customer.email", "query.statement", "note")))
    event = {
        "customer": {"email": "x", "id": 7},
        "query.statement": "SELECT * FROM cards",
        "note": {"any": "thing"},
        "comment": "paid with 4111 1111 1111 1111",
    }
    assert m.sample(event) == {
        "customer": {"email": "[masked]", "id": 7},
        "query.statement": "[masked]",
        "note": "[masked]",
        "comment": "paid with [card ****1111]",
    }
    assert event["customer"] == {"email": "x", "id": 7}  # the input is not changed


def alert_record(group: dict[str, object]) -> dict[str, object]:
    return {
        "id": "1", "rule": "r", "group": group,
        "summary": "jane@shop.example read 4111111111111111",
        "description": "d", "annotations": {"summary": "by jane@shop.example"},
        "labels": {"team": "security"}, "sample_event_ids": ["e-jane@shop.example"],
        "samples": [{"card": "4111111111111111"}],
    }  # fmt: skip


def test_alert_masks_text_but_not_group_values() -> None:
    out = M.alert(alert_record({"actor.id": "jane@shop.example"}))
    assert out["group"] == {"actor.id": "jane@shop.example"}
    assert out["summary"] == "j***@shop.example read [card ****1111]"
    assert out["annotations"] == {"summary": "by j***@shop.example"}
    assert out["samples"] == [{"card": "[card ****1111]"}]
    assert out["sample_event_ids"] == ["e***@shop.example"]


def test_hashed_group_values_are_keyed_stable_and_replace_their_spelling() -> None:
    m = Masker(PrivacyConfig(hash_group_values=True, hash_key=SecretStr("k1")))
    out = m.alert(alert_record({"actor.id": "jane@shop.example"}))
    hashed = out["group"]["actor.id"]
    assert hashed.startswith("anon:") and len(hashed) == 21
    assert "jane" not in str(out)
    assert out["summary"] == f"{hashed} read [card ****1111]"
    assert m.hash_group("jane@shop.example") == hashed
    assert m.hash_group(hashed) == hashed
    other = Masker(PrivacyConfig(hash_group_values=True, hash_key=SecretStr("k2")))
    assert other.hash_group("jane@shop.example") != hashed


def test_hash_key_from_file_and_required(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    c = PrivacyConfig(hash_group_values=True, hash_key_file=key)
    assert c.hash_key is not None and c.hash_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(c)
    with pytest.raises(ValidationError, match="give hash_key"):
        PrivacyConfig(hash_group_values=True)
    with pytest.raises(ValidationError, match="cannot read"):
        PrivacyConfig(hash_group_values=True, hash_key_file=tmp_path / "missing")
    with pytest.raises(ValidationError, match="extra"):
        PrivacyConfig(mask_card=True)  # type: ignore[call-arg]


def test_log_processor_masks_every_value() -> None:
    event = {"event": "invalid_event", "sample": '{"email": "a.b@x.example", "pan": "4111111111111111"}', "n": 3}
    out = M.log_processor(None, "warning", event)
    assert out == {"event": "invalid_event", "sample": '{"email": "a***@x.example", "pan": "[card ****1111]"}', "n": 3}


def test_a_given_key_wins_over_the_file(tmp_path: Path) -> None:
    """An environment override sets hash_key while the YAML still names hash_key_file."""
    c = PrivacyConfig(hash_group_values=True, hash_key=SecretStr("env"), hash_key_file=tmp_path / "absent")
    assert c.hash_key is not None and c.hash_key.get_secret_value() == "env"


# ------------------------------------------------------------------ alerts as the daemon masks them

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@shop.example"
SPOTS = "rows of {resource.name} for {customer.email} paid with {card} from {actor.id}"


RULE = f"""\
rules:
  - id: r
    severity: high
    group_by: [actor.id]
    annotations: {{summary: "{SPOTS}"}}
"""


def fired_alert(**event: object) -> Alert:
    (alert,) = run(engine(RULE), [ev(T0, "mallory@corp.example", resource={"name": "customers"}, **event)])
    return alert


def test_mask_alert_masks_what_templates_took_from_event_fields() -> None:
    alert = fired_alert(customer={"email": EMAIL}, card=CARD)
    masked = M.mask_alert(alert)
    text = masked.to_json().decode()
    assert EMAIL not in text and CARD not in text and "4111111111111111" not in text
    assert "[card ****1111]" in masked.summary and "j***@shop.example" in masked.summary
    assert masked.group == {"actor.id": "mallory@corp.example"}  # who did it: not masked
    assert masked.id == alert.id  # without hashing the alert keeps its identity
    assert M.mask_alert(masked) == masked  # idempotent


def test_mask_alert_masks_before_the_size_budget_cuts() -> None:
    """A card number across the cut of a long value would leave its first digits unmasked
    if the cut came first."""
    long = "x" * 1010 + CARD  # the 1,024-byte cut falls inside the number
    eng = engine(RULE, template_field=M.field)
    (alert,) = run(eng, [ev(T0, "mallory@corp.example", resource={"name": "customers"}, card=long)])
    text = M.mask_alert(alert).to_dict()["summary"]
    assert "4111 11" not in text and "[card ****1111" in text  # the mask may be cut, not the digits
    (unmasked,) = run(engine(RULE), [ev(T0, "m", resource={"name": "customers"}, card=long)])
    assert "4111 1111 1111" in unmasked.summary  # what the hook prevents: the cut came first


def test_hashing_rekeys_the_alert_id_the_same_way_for_alert_and_record() -> None:
    m = Masker(PrivacyConfig(hash_group_values=True, hash_key=SecretStr("k")))
    alert = fired_alert(customer={"email": EMAIL}, card=CARD)
    masked = m.mask_alert(alert)
    hashed = masked.group["actor.id"]
    assert hashed.startswith("anon:") and "mallory" not in masked.to_json().decode()
    assert masked.id == alert_id("r", [hashed], alert.fired_at_ms) != alert.id
    # a record made later from the unmasked alert (a resolution) gets the same names
    later = m.alert({**alert.to_dict(), "type": "resolved"})
    assert later["id"] == masked.id and later["group"] == masked.group
    assert m.alert(later) == later  # idempotent, the id too


def test_mask_fields_blank_a_field_a_template_names() -> None:
    eng = engine("rules:\n  - {id: r, severity: high, annotations: {summary: 'for {customer.email} {customer.id}'}}\n",
                 template_field=Masker(PrivacyConfig(mask_fields=("customer.email",))).field)  # fmt: skip
    (alert,) = run(eng, [ev(T0, customer={"email": "secret-but-no-at-sign", "id": 7})])
    assert alert.summary == "for [masked] 7"


# ------------------------------------------------------------------ database statements

STATEMENT = "select pan, email from shop.cards where email = 'victim@shop.example' -- MARKER-7f3a"
PGAUDIT_SELECT = (
    '2024-05-01 12:00:01.000 UTC,"hvac_vendor","shop",4242,"10.0.0.5:51234",6632f0a0.1092,4,"SELECT",'
    '2024-05-01 11:59:00 UTC,3/11,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,TABLE,shop.cards,'
    f'""{STATEMENT}"",<not logged>,2",,,,,,,,,"psql","client backend",,0'
)


def _pgaudit_alert(annotations: dict[str, str]) -> dict[str, object]:
    (event,) = get_format("pgaudit").decode(PGAUDIT_SELECT.encode())
    assert isinstance(event, dict) and STATEMENT in str(event["raw"])  # the input keeps it, under raw.
    ts = parse_ts(event["ts"])
    assert ts is not None
    text = "rules:\n  - " + orjson.dumps({
        "id": "card-reads", "severity": "high", "match": {"resource.name": "cards"},
        "group_by": ["actor.id"], "window": "10m", "aggregate": {"sum": "rows"}, "threshold": {"gte": 1},
        "annotations": annotations,
    }).decode() + "\n"  # fmt: skip
    eng = engine(text, template_field=M.field)
    (alert,) = run(eng, [(event, ts)])
    return M.mask_alert(alert).to_dict()


def test_the_statement_text_never_goes_into_an_alert_unless_the_rule_asks() -> None:
    record = _pgaudit_alert({"summary": "{actor.id} read {value_text} of {resource.name} from {actor.ip}",
                             "runbook": "check {actor.session}"})  # fmt: skip
    text = orjson.dumps(record).decode()
    assert "MARKER-7f3a" not in text and "select pan" not in text
    assert record["summary"] == "hvac_vendor read 2 rows of cards from 10.0.0.5"
    assert record["sample_event_ids"] == []  # pgaudit events carry no id: nothing else rides along


def test_a_rule_that_names_the_statement_gets_it_masked() -> None:
    record = _pgaudit_alert({"statement": "{raw.message}"})
    assert "MARKER-7f3a" in record["annotations"]["statement"]
    assert "victim@" not in orjson.dumps(record).decode() and "v***@shop.example" in record["annotations"]["statement"]
    masked = Masker(PrivacyConfig(mask_fields=("raw.message",)))
    assert masked.field("raw.message", STATEMENT) == "[masked]"


def test_a_short_hashed_group_value_replaces_only_its_whole_spelling() -> None:
    m = Masker(PrivacyConfig(hash_group_values=True, hash_key=SecretStr("k")))
    out = m.alert({"id": "1", "rule": "r", "group": {"customer.id": 7}, "fired_at": "2026-11-27T00:00:00.000Z",
                   "summary": "customer 7 read 1,700 rows (7)"})  # fmt: skip
    hashed = out["group"]["customer.id"]
    assert out["summary"] == f"customer {hashed} read 1,700 rows ({hashed})"
