"""The admin password hash: salted, verifiable, never the password itself."""

from __future__ import annotations

from routstr.core.passwords import hash_password, password_problem, verify_password


def test_hash_verifies_only_the_same_password():
    h = hash_password("correct horse", n=2**10)
    assert h.startswith("scrypt$1024$8$1$") and "correct horse" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("correct horsE", h)
    assert hash_password("correct horse", n=2**10) != h  # salted


def test_malformed_stored_values_never_verify():
    for stored in ("", "plain", "scrypt$x$8$1$AA==$AA==", "bcrypt$1$2$3$4$5", "scrypt$1024$8$1$!!$AA=="):
        assert not verify_password("anything", stored)


def test_password_rules():
    assert password_problem("short") is not None
    assert password_problem("long enough") is None
    assert password_problem("x" * 2000) is not None
