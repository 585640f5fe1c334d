"""The committed schema.graphql is the schema the code serves."""

from pathlib import Path

from gql.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_schema_matches_the_code():
    expected = str(schema).strip()
    committed = SCHEMA_FILE.read_text().strip()
    assert committed == expected, (
        "schema.graphql is stale: regenerate it with "
        '`python -c "from gql.schema import schema; print(schema)" > schema.graphql`'
    )
