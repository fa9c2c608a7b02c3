import pytest

from ccat_hpc.envsubst import SubstitutionError, expand, expand_tree


def test_plain_variable_is_substituted() -> None:
    assert expand("${ROOT}/x", {"ROOT": "/data"}) == "/data/x"


def test_default_used_when_unset_or_empty() -> None:
    assert expand("${ROOT:-/srv}/x", {}) == "/srv/x"
    assert expand("${ROOT:-/srv}/x", {"ROOT": ""}) == "/srv/x"
    assert expand("${ROOT:-/srv}/x", {"ROOT": "/data"}) == "/data/x"


def test_dash_default_only_when_unset() -> None:
    assert expand("${ROOT-/srv}", {"ROOT": ""}) == ""
    assert expand("${ROOT-/srv}", {}) == "/srv"


def test_empty_default_and_dollar_escape() -> None:
    assert expand("a${PREFIX:-}b", {}) == "ab"
    assert expand("cost $$5 ${X}", {"X": "y"}) == "cost $5 y"


def test_missing_required_variable_names_it() -> None:
    with pytest.raises(SubstitutionError, match="CCAT_S3_KEY is not set"):
        expand("${CCAT_S3_KEY}", {})


def test_malformed_reference_is_an_error() -> None:
    with pytest.raises(SubstitutionError, match="malformed"):
        expand("${not closed", {})


def test_tree_error_names_the_key_path() -> None:
    tree = {"locations": [{"name": "a", "path": "${NOPE}"}]}
    with pytest.raises(SubstitutionError, match=r"locations\[0\]\.path"):
        expand_tree(tree, {})


def test_tree_keeps_non_strings() -> None:
    tree = {"n": 3, "flag": True, "list": ["${A}", None]}
    assert expand_tree(tree, {"A": "x"}) == {"n": 3, "flag": True, "list": ["x", None]}


def test_value_cannot_inject_structure() -> None:
    assert expand_tree({"p": "${A}"}, {"A": "x\nother: 1"}) == {"p": "x\nother: 1"}
