"""pgBackRest's backup.info, read as `pgbackrest info --output=json` shows its sets."""

from __future__ import annotations

import datetime

import pytest

from pulsebase_operator.policy import retention
from pulsebase_operator.probes import repository

# The layout pgBackRest 2.x writes: INI sections, JSON values, one line per set.
BACKUP_INFO = """\
[backrest]
backrest-format=5
backrest-version="2.54.0"

[backup:current]
20261203-010002F={"backrest-format":5,"backrest-version":"2.54.0",\
"backup-archive-start":"000000010000000000000004","backup-archive-stop":"000000010000000000000004",\
"backup-info-repo-size":4153223,"backup-info-size":23462911,\
"backup-lsn-start":"0/4000028","backup-lsn-stop":"0/4000138",\
"backup-prior":null,"backup-reference":null,\
"backup-timestamp-start":1796259602,"backup-timestamp-stop":1796259608,\
"backup-type":"full","db-id":1,"option-archive-check":true,"option-archive-copy":false}
20261203-010002F_20261203-023002I={"backrest-format":5,"backrest-version":"2.54.0",\
"backup-archive-start":"000000010000000000000006","backup-archive-stop":"000000010000000000000006",\
"backup-error":true,"backup-prior":"20261203-010002F",\
"backup-reference":["20261203-010002F"],\
"backup-timestamp-start":1796265002,"backup-timestamp-stop":1796265004,\
"backup-type":"incr","db-id":1}

[db]
db-catalog-version=202307071
db-control-version=1300
db-id=1
db-system-id=7441234567890123456
db-version="15"

[backrest]
backrest-checksum="0f3e1c"
"""


def test_sets_have_label_type_times_prior_reference_and_error() -> None:
    (stanza,) = repository.catalog_from_info(BACKUP_INFO)
    assert stanza["name"] == "pulsebase"
    first, second = stanza["backup"]
    assert first == {
        "label": "20261203-010002F",
        "type": "full",
        "prior": None,
        "reference": None,
        "timestamp": {"start": 1796259602, "stop": 1796259608},
        "archive": {"start": "000000010000000000000004", "stop": "000000010000000000000004"},
        "error": False,
    }
    assert second["label"] == "20261203-010002F_20261203-023002I"
    assert second["type"] == "incr"
    assert second["prior"] == "20261203-010002F"
    assert second["reference"] == ["20261203-010002F"]
    assert second["error"] is True


def test_the_retention_policy_reads_the_sets_as_it_reads_pgbackrest_info() -> None:
    sets = retention.backups_from_info(repository.catalog_from_info(BACKUP_INFO))
    assert [(s.label, s.kind, s.failed) for s in sets] == [
        ("20261203-010002F", "full", False),
        ("20261203-010002F_20261203-023002I", "incr", True),
    ]
    assert sets[0].stopped == datetime.datetime.fromtimestamp(1796259608, tz=datetime.UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not an ini file", "not an INI file"),
        ("[db]\ndb-id=1\n", "no \\[backup:current\\] section"),
        ("[backup:current]\nX={not json\n", "set X is not JSON"),
        ("[backup:current]\nX=[1]\n", "set X is not a JSON object"),
    ],
)
def test_a_damaged_catalog_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        repository.catalog_from_info(text)


def test_an_empty_repository_has_no_sets() -> None:
    assert repository.catalog_from_info("[backup:current]\n") == [
        {"name": "pulsebase", "backup": []}
    ]
