"""The venue password never appears in a message: an over-long or non-ASCII password is refused by
the worker's session (dpdk/ouch.py) and the SoupBinTCP codec naming the field, its length and the
fix, never its value."""

from __future__ import annotations

import pytest

from appliance.protocols import soupbintcp as soup
from dpdk.ouch import OuchSession

SECRET = "hunter2-is-too-long"


@pytest.mark.parametrize("password, fix", [(SECRET, "at most 10 characters"),
                                           ("pässwörd", "only printable ASCII"),
                                           ("tab\there", "only printable ASCII")])
def test_a_bad_password_is_named_by_field_and_fix_never_by_value(password, fix):
    with pytest.raises(ValueError) as exc:
        OuchSession(("127.0.0.1", 9), "TWAPP1", password)
    msg = str(exc.value)
    assert msg.startswith(f"password ({len(password)} characters): ") and fix in msg
    assert not [password[i:i + 5] for i in range(len(password) - 4) if password[i:i + 5] in msg]
    assert exc.value.__cause__ is None and exc.value.__context__ is None  # no chained error quoting it


def test_the_other_fields_still_show_their_value():
    with pytest.raises(ValueError, match="username 'TOOLONGNAME': at most 6 characters"):
        OuchSession(("127.0.0.1", 9), "TOOLONGNAME", "ok")


@pytest.mark.parametrize("password", [SECRET, "pässwörd"])
def test_the_soupbintcp_codec_never_shows_a_password(password):
    with pytest.raises(soup.SoupError) as exc:
        soup.encode(soup.LoginRequest("TWAPP1", password, "", 1))
    assert "password" in str(exc.value) and password not in str(exc.value) and exc.value.__cause__ is None
    raw = soup.encode(soup.LoginRequest("TWAPP1", "abc", "", 1))
    with pytest.raises(soup.SoupError) as exc:
        soup.decode(raw[2:9] + "é".encode("latin-1") + raw[10:])  # a byte of the password not ASCII
    assert "é" not in str(exc.value) and "\\xe9" not in str(exc.value) and "abc" not in str(exc.value)
