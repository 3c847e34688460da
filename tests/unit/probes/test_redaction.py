from __future__ import annotations

import re

import psycopg.conninfo
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsebase_operator.probes.redaction import (
    CONNECTION_STRING,
    MASK,
    MAX_LENGTH,
    WHOLE_WORD_BELOW,
    scrub,
)

# Anything but the mask's own character, which could rebuild a secret around the mask.
long_secrets = st.text(
    st.characters(exclude_characters="*", exclude_categories=("Cs",)), min_size=WHOLE_WORD_BELOW
)
short_secrets = st.text(
    st.characters(exclude_characters="*", exclude_categories=("Cs",)),
    min_size=1,
    max_size=WHOLE_WORD_BELOW - 1,
)
# Letters and digits, ending in a digit so that no fixed word of a message can spell one.
plain_secrets = st.text(
    st.characters(categories=("Lu", "Ll", "Nd"), max_codepoint=127), min_size=5
).map(lambda text: text + "7")
surroundings = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# Text that cannot itself spell a plain secret.
punctuation = st.text(" :;,()[]-\n\t", max_size=20)


@given(long_secrets, surroundings, surroundings)
def test_a_known_secret_never_survives(secret: str, before: str, after: str) -> None:
    text = f"{before}{secret}{after}{secret}"
    assert secret not in scrub(text, secrets=[secret])


def standing_alone(secret: str, text: str) -> bool:
    head = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
    tail = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
    return re.search(head + re.escape(secret) + tail, text) is not None


@given(short_secrets, surroundings, surroundings, st.integers(0, 400))
def test_a_short_known_secret_never_stands_as_a_word_of_its_own(
    secret: str, before: str, after: str, padding: int
) -> None:
    # The padding pushes some cases past MAX_LENGTH, so the cut is tried too.
    text = f"{before} {secret} {after}:{secret}@{'w' * padding} {secret}"
    assert not standing_alone(secret, scrub(text, secrets=[secret]))


def test_a_short_secret_inside_another_word_leaves_the_word_alone() -> None:
    assert scrub("user pw: bypass pw", secrets=["pw"]) == "user ***: bypass ***"


@given(plain_secrets, punctuation)
def test_a_libpq_connection_string_goes_whole_even_when_the_secret_is_unknown(
    secret: str, before: str
) -> None:
    dsn = psycopg.conninfo.make_conninfo(
        host="db.example", port=5432, dbname="app", user="probe", password=secret
    )
    scrubbed = scrub(f"{before}invalid connection string: {dsn}")
    assert secret not in scrubbed
    assert CONNECTION_STRING in scrubbed


@given(plain_secrets)
def test_a_database_uri_goes_whole(secret: str) -> None:
    scrubbed = scrub(f"could not parse postgresql://probe:{secret}@db:5432/app?sslmode=require")
    assert secret not in scrubbed
    assert CONNECTION_STRING in scrubbed


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ("connect to https://user:hunter22@s3.example/x failed", "https://user:***@s3.example/x"),
        ("password=hunter22 sslmode=require", CONNECTION_STRING),
        ("options: password = 'hunter 22' and more", "password = ***"),
        ('{"SecretAccessKey": "abcdEFGH1234"}', '"SecretAccessKey": ***'),
    ],
)
def test_common_shapes_of_a_leaked_secret_are_masked(text: str, left: str) -> None:
    scrubbed = scrub(text)
    assert left in scrubbed
    assert "hunter" not in scrubbed
    assert "abcdEFGH" not in scrubbed


def test_ordinary_error_text_is_kept_and_folded_onto_one_line() -> None:
    text = 'FATAL:  password authentication failed for user "probe"\n\tDETAIL: ...'
    assert scrub(text) == 'FATAL: password authentication failed for user "probe" DETAIL: ...'


@given(st.text(max_size=2000), st.lists(st.text(min_size=1, max_size=12), max_size=3))
def test_text_is_never_longer_than_the_limit(text: str, known: list[str]) -> None:
    assert len(scrub(text, secrets=known)) <= MAX_LENGTH


def test_long_text_is_cut() -> None:
    scrubbed = scrub("x" * 1000)
    assert len(scrubbed) <= MAX_LENGTH
    assert scrubbed.endswith("…")


def test_the_longer_of_two_overlapping_secrets_is_masked_whole() -> None:
    assert scrub("key=abc123456 here", secrets=["abc", "abc123456"]) == f"key={MASK} here"
