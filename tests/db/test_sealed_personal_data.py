"""Personal data sealing: deterministic, bound to its field, rotatable."""

from __future__ import annotations

import os

import pytest

from cartera.crypto import PiiCipher

FIELD = "contact_points.value"


def test_sealing_is_deterministic_and_opens_only_for_its_field() -> None:
    cipher = PiiCipher(os.urandom(32))
    sealed = cipher.seal("+51987654321", FIELD)
    assert sealed == cipher.seal("+51987654321", FIELD)
    assert sealed != cipher.seal("+51987654322", FIELD)
    assert "987654321" not in sealed and sealed.startswith(PiiCipher.MARKER)
    assert cipher.open(sealed, FIELD) == "+51987654321"
    with pytest.raises(ValueError, match="does not open"):
        cipher.open(sealed, "debtors.national_id")


def test_plaintext_and_unknown_keys_are_refused() -> None:
    cipher = PiiCipher(os.urandom(32))
    with pytest.raises(ValueError, match="not sealed"):
        cipher.open("+51987654321", FIELD)
    foreign = PiiCipher(os.urandom(32)).seal("x", FIELD)
    with pytest.raises(ValueError, match="does not hold"):
        cipher.open(foreign, FIELD)


def test_rotation_opens_old_values_and_looks_up_under_every_key() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old = PiiCipher(old_key)
    rotating = PiiCipher(new_key, [old_key])
    stored = old.seal("ana@example.com", FIELD)
    assert rotating.open(stored, FIELD) == "ana@example.com"
    assert not rotating.single_key
    forms = rotating.lookup_forms("ana@example.com", FIELD)
    assert forms[0] == rotating.seal("ana@example.com", FIELD) and stored in forms
    assert rotating.open(rotating.reseal(stored, FIELD), FIELD) == "ana@example.com"
    assert rotating.reseal(stored, FIELD) != stored


def test_opened_values_are_remembered_per_field_and_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cipher = PiiCipher(os.urandom(32))
    monkeypatch.setattr(PiiCipher, "OPENED_PER_FIELD", 3)
    sealed = [cipher.seal(f"+5198765432{i}", FIELD) for i in range(5)]
    assert [cipher.open(s, FIELD) for s in sealed] == [f"+5198765432{i}" for i in range(5)]
    assert [cipher.open(s, FIELD) for s in sealed] == [f"+5198765432{i}" for i in range(5)]
    assert 0 < len(cipher._opened[FIELD]) <= 3
    # Remembered per field: a value of one field still does not open as another's.
    with pytest.raises(ValueError, match="does not open"):
        cipher.open(sealed[4], "debtors.national_id")
    with pytest.raises(ValueError, match="not sealed"):
        cipher.open("+51987654321", FIELD)
