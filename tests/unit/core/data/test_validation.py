"""Data validation: the spec becomes a real Great Expectations suite run on tiny frames."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pandas as pd

from airflow_mlops.core.config.validation import ColumnSpec, ValidationSpec
from airflow_mlops.core.data.expectations import (
    FailedExpectation,
    ValidationResult,
    build_suite_spec,
)
from airflow_mlops.core.data.validation import validate_frame, write_report


def clean_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [23, 35, 47, 51, 62, 19, 30, 44, 58, 70],
            "income": [1.5, 2.0, None, 3.2, 4.1, None, 2.2, 5.0, 1.1, 0.5],
            "city": [
                "oslo",
                "rome",
                "oslo",
                "lima",
                "rome",
                "lima",
                "oslo",
                "rome",
                "lima",
                "oslo",
            ],
            "member": [True, False, True, True, False, False, True, False, True, True],
        }
    )


def clean_spec(**overrides: ColumnSpec) -> ValidationSpec:
    columns = {
        "age": ColumnSpec(type="integer", min=0, max=120),
        "income": ColumnSpec(type="numeric", max_null_fraction=0.5),
        "city": ColumnSpec(type="string", allowed=("oslo", "rome", "lima")),
        "member": ColumnSpec(type="boolean"),
    }
    columns.update(overrides)
    return ValidationSpec(min_rows=5, max_rows=100, columns=columns)


def only_failure(result: ValidationResult) -> FailedExpectation:
    assert len(result.failed) == 1, result.summary
    return result.failed[0]


def test_clean_frame_passes_every_planned_expectation():
    spec = clean_spec()
    result = validate_frame(clean_frame(), spec, data_uri="file:///data/train.parquet")

    # row count + age 4 (exists, type, nulls, range) + income 3 + city 4 + member 3
    assert len(build_suite_spec(spec)) == 15
    assert result.success
    assert result.evaluated == 15
    assert result.failed == ()
    assert result.rows == 10
    assert result.data_uri == "file:///data/train.parquet"
    assert result.summary == "validation passed: 15 of 15 expectations"


def test_nulls_beyond_the_limit_fail_with_column_and_count():
    frame = clean_frame()
    frame.loc[[1, 4, 7], "income"] = None  # 5 nulls of 10, limit 20%
    spec = clean_spec(income=ColumnSpec(type="numeric", max_null_fraction=0.2))

    failure = only_failure(validate_frame(frame, spec))

    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.column == "income"
    assert failure.observed == {"unexpected_count": 5, "unexpected_percent": 50.0}
    assert failure.expected == "max_null_fraction 0.2"
    assert failure.message == "column `income` has 5 nulls (50.00%, allowed 20%)"


def test_nulls_exactly_at_the_limit_pass():
    frame = clean_frame()
    frame.loc[[0, 1, 3, 4, 6], "income"] = None  # 7 nulls of 10
    # In floats 1 - 0.7 is 0.30000000000000004, more than the 3 in 10 non-null rows GX counts.
    spec = clean_spec(income=ColumnSpec(type="numeric", max_null_fraction=0.7))

    assert validate_frame(frame, spec).success


def test_out_of_range_values_fail_with_the_figure():
    frame = clean_frame()
    frame.loc[[2, 5], "age"] = [200, -1]

    failure = only_failure(validate_frame(frame, clean_spec()))

    assert failure.expectation == "expect_column_values_to_be_between"
    assert failure.column == "age"
    assert failure.observed["unexpected_count"] == 2
    assert failure.observed["unexpected_percent"] == 20.0
    assert sorted(failure.observed["partial_unexpected_list"]) == [-1, 200]
    assert failure.expected == "min 0, max 120"
    assert "column `age` has 2 values out of range (20.00% of non-null" in failure.message


def test_unknown_categories_fail_with_examples():
    frame = clean_frame()
    frame.loc[[0, 3], "city"] = ["paris", "tokyo"]

    failure = only_failure(validate_frame(frame, clean_spec()))

    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.observed["unexpected_count"] == 2
    assert sorted(failure.observed["partial_unexpected_list"]) == ["paris", "tokyo"]
    assert failure.expected == "one of ['oslo', 'rome', 'lima']"


def test_a_string_in_a_numeric_column_fails_the_type_check():
    frame = clean_frame()
    frame["income"] = frame["income"].astype(object)
    frame.loc[3, "income"] = "n/a"

    result = validate_frame(frame, clean_spec())

    type_failures = [
        f for f in result.failed if f.expectation == "expect_column_values_to_be_in_type_list"
    ]
    assert not result.success
    assert len(type_failures) == 1
    assert type_failures[0].column == "income"
    assert type_failures[0].observed["unexpected_count"] == 1
    assert type_failures[0].observed["partial_unexpected_list"] == ["n/a"]
    assert "1 value of the wrong type" in type_failures[0].message


def test_a_float_column_is_integer_only_when_its_values_are_whole():
    whole = clean_frame().astype({"age": "float64"})
    whole.loc[2, "age"] = np.nan  # how pandas stores an integer column with a null
    spec = clean_spec(age=ColumnSpec(type="integer", max_null_fraction=0.2))
    assert validate_frame(whole, spec).success

    fractional = whole.copy()
    fractional.loc[3, "age"] = 51.5
    failure = only_failure(validate_frame(fractional, spec))
    assert failure.expectation == "expect_column_values_to_be_in_type_list"
    assert failure.observed == {"observed_value": "float64"}
    assert failure.message == "column `age` has dtype float64 (expected integer (int dtype))"


def test_pandas_extension_dtypes_pass_their_type_checks():
    frame = clean_frame()
    frame["age"] = frame["age"].astype("Int64")
    frame["member"] = frame["member"].astype("boolean")
    frame["city"] = frame["city"].astype("category")
    frame["code"] = frame["city"].astype("string[pyarrow]")
    spec = clean_spec(code=ColumnSpec(type="string"))

    result = validate_frame(frame, spec)

    assert result.success, result.summary


def test_a_missing_column_fails_once_and_the_rest_still_runs():
    frame = clean_frame().drop(columns=["income"])
    frame.loc[0, "age"] = 500

    result = validate_frame(frame, clean_spec())

    assert [(f.expectation, f.column) for f in result.failed] == [
        ("expect_column_values_to_be_between", "age"),
        ("expect_column_to_exist", "income"),
    ]
    assert result.skipped == 2  # income's type and null checks
    assert result.evaluated == 13
    assert result.failed[1].message == "column `income` is missing"
    assert "(2 skipped on missing columns)" in result.summary


def test_too_few_rows_fail_with_the_row_count():
    failure = only_failure(validate_frame(clean_frame().head(3), clean_spec()))

    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.column is None
    assert failure.observed == {"observed_value": 3}
    assert failure.message == "table has 3 rows (allowed min 5, max 100)"


def test_mostly_tolerates_a_share_of_bad_values():
    spec = clean_spec(age=ColumnSpec(type="integer", min=0, max=120, mostly=0.8))
    two_bad = clean_frame()
    two_bad.loc[[0, 1], "age"] = 130
    assert validate_frame(two_bad, spec).success

    three_bad = clean_frame()
    three_bad.loc[[0, 1, 2], "age"] = 130
    failure = only_failure(validate_frame(three_bad, spec))
    assert failure.mostly == 0.8
    assert failure.message.endswith("allowed min 0, max 120 for 80% of non-null rows)")


def test_summary_lists_each_failure_with_its_figure():
    frame = clean_frame()
    frame.loc[4, "age"] = None
    frame.loc[0, "city"] = "paris"

    result = validate_frame(frame, clean_spec())

    assert result.summary == (
        "validation failed: 2 of 15 expectations; "
        "column `age` has 1 null (10.00%, allowed 0%); "
        "column `city` has 1 value not allowed (10.00% of non-null, e.g. 'paris'; "
        "allowed one of ['oslo', 'rome', 'lima'])"
    )


def test_the_target_must_exist_and_hold_no_nulls_even_when_the_spec_omits_it():
    frame = clean_frame()
    frame["label"] = [0, 1, 0, 1, None, 1, 0, 1, 0, 1]

    failure = only_failure(validate_frame(frame, clean_spec(), target="label"))
    assert (failure.expectation, failure.column) == ("expect_column_values_to_not_be_null", "label")

    missing = only_failure(validate_frame(clean_frame(), clean_spec(), target="label"))
    assert (missing.expectation, missing.column) == ("expect_column_to_exist", "label")


def test_plan_skips_a_null_check_that_allows_everything():
    spec = ValidationSpec(columns={"x": ColumnSpec(max_null_fraction=1.0)})

    types = [e.type for e in build_suite_spec(spec)]

    assert "expect_column_values_to_not_be_null" not in types
    assert types == [
        "expect_table_row_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_in_type_list",
    ]


def test_no_progress_bar_or_gx_chatter_reaches_the_log(capfd):
    validate_frame(clean_frame(), clean_spec())

    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in err + out
    assert "great_expectations" not in err + out


def test_report_round_trips_through_json(tmp_path):
    frame = clean_frame()
    frame.loc[0, "age"] = np.nan
    result = validate_frame(frame, clean_spec(), data_uri="s3://bucket/train.parquet")

    path = str(tmp_path / "reports" / "validation.json")
    assert write_report(result, path) == path

    with open(path) as handle:
        report = json.load(handle)
    assert report["success"] is False
    assert report["summary"] == result.summary
    assert report["failed"][0]["message"] == "column `age` has 1 null (10.00%, allowed 0%)"
    assert ValidationResult.from_dict(report) == result
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["validation.json"]


def test_report_can_go_to_an_fsspec_uri():
    result = validate_frame(clean_frame(), clean_spec())

    uri = write_report(result, "memory://mlops-tests/run-1/validation.json")

    with fsspec.open(uri, "r") as handle:
        assert json.load(handle)["summary"] == "validation passed: 15 of 15 expectations"


def test_message_of_a_check_that_could_not_run_names_the_error():
    failure = FailedExpectation(
        expectation="expect_column_values_to_be_between",
        column="income",
        observed={"error": "Column values, min_value, and max_value must be of the same type."},
        expected="min 0",
    )

    assert failure.message == (
        "column `income`: expect_column_values_to_be_between could not run: "
        "Column values, min_value, and max_value must be of the same type"
    )


def csv_like_frame() -> pd.DataFrame:
    """What pandas reads from a CSV whose numeric column holds a few stray strings: every value
    of that column is text."""
    frame = clean_frame()
    frame["income"] = ["1.5", "2.0", "", "3.2", "abc", "", "2.2", "5.0", "oops", "0.5"]
    frame.loc[frame["income"] == "", "income"] = None
    return frame


def test_numbers_stored_as_text_fail_only_on_the_values_that_are_not_numbers():
    result = validate_frame(csv_like_frame(), clean_spec())

    failure = only_failure(result)
    assert failure.column == "income"
    assert failure.expectation == "expect_column_values_to_be_in_type_list"
    assert failure.observed["unexpected_count"] == 2
    assert failure.observed["partial_unexpected_list"] == ["abc", "oops"]
    assert "2 values of the wrong type (25.00% of non-null, e.g. 'abc', 'oops'" in failure.message


def test_range_checks_on_a_mistyped_column_are_skipped_not_reported_as_errors():
    spec = clean_spec(income=ColumnSpec(type="numeric", max_null_fraction=0.5, min=0, max=10))
    result = validate_frame(csv_like_frame(), spec)

    assert [f.expectation for f in result.failed] == ["expect_column_values_to_be_in_type_list"]
    assert result.skipped == 1
    assert "could not run" not in result.summary
    assert "skipped" in result.summary


def test_text_numbers_that_all_parse_pass_and_their_ranges_are_checked():
    frame = clean_frame()
    frame["income"] = ["1.5", "2", None, "3.2", "40", None, "2.2", "5.0", "1.1", "0.5"]
    spec = clean_spec(income=ColumnSpec(type="numeric", max_null_fraction=0.5, max=10))
    failure = only_failure(validate_frame(frame, spec))
    assert failure.expectation == "expect_column_values_to_be_between"
    assert failure.observed["partial_unexpected_list"] == [40]


def test_every_numeric_feature_is_type_checked_without_a_column_rule():
    frame = clean_frame()
    frame["visits"] = [1, 2, 3, "many", 5, 6, 7, 8, 9, 10]
    frame["plan"] = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]  # an integer-coded categorical: any type
    result = validate_frame(
        frame, clean_spec(), features={"visits": "numeric", "plan": "categorical"}
    )

    failure = only_failure(result)
    assert failure.column == "visits"
    assert failure.observed["partial_unexpected_list"] == ["many"]


def test_a_configured_feature_missing_from_the_data_fails_validation():
    result = validate_frame(clean_frame(), clean_spec(), features={"visits": "numeric"})
    assert only_failure(result).message == "column `visits` is missing"


def test_a_column_rule_wins_over_the_feature_default():
    plan = build_suite_spec(clean_spec(), features={"age": "numeric", "city": "categorical"})
    types = {e.column: e.kwargs["type_list"] for e in plan if "type_list" in e.kwargs}
    assert "float64" not in types["age"]  # the rule's "integer", not the default "numeric"
    assert types["city"] == ["str", "StringDtype"]
