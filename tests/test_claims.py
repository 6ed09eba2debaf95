"""The statistics that decide a chapter's claims (ensembles_lib.claims), on constructed data."""

import json
import math

import numpy as np
import pytest

from ensembles_lib.claims import (All, Claim, Every, NotMeasured, Paired, Point, Rate, Ratio, Threshold, decide,
                                  decide_and_write, mcnemar, wilson)
from ensembles_lib.results import load_results, write_results


def paired(n, both, only_a, only_b):
    """Correctness vectors of n images: `both` right for both, `only_a`/`only_b` discordant."""
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:both + only_a] = True
    b[:both] = True
    b[both + only_a:both + only_a + only_b] = True
    return a, b


def single_proportion_rule(a, b):
    """The rule the chapters used before: a difference beyond 2*sqrt(0.25/n) is significant."""
    return abs(a.mean() - b.mean()) > 2 * math.sqrt(0.25 / len(a))


def test_mcnemar_needs_discordant_pairs_where_the_single_proportion_rule_does_not():
    # 300 images, difference 0.07 (beyond 2*sqrt(.25/300) = 0.058), made of 70 vs 50 discordant
    # pairs: a split McNemar cannot tell from chance
    a, b = paired(300, 100, 70, 50)
    assert single_proportion_rule(a, b)
    result = mcnemar(a, b)
    assert result["difference"] == pytest.approx(20 / 300)
    assert result["p_value"] > 0.05 and result["interval"][0] < 0 < result["interval"][1]


def test_mcnemar_decides_what_the_single_proportion_rule_calls_noise():
    # difference 0.04 (inside 0.058) made of 12 discordant pairs, all one way
    a, b = paired(300, 150, 12, 0)
    assert not single_proportion_rule(a, b)
    result = mcnemar(a, b)
    assert result["p_value"] == pytest.approx(2 * 0.5 ** 12)
    assert result["interval"][0] > 0
    assert result["discordant"] == [12, 0]


def test_mcnemar_interval_and_p_value_agree():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(20, 400))
        a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        r = mcnemar(a, b)
        excludes_zero = r["interval"][0] > 0 or r["interval"][1] < 0
        assert excludes_zero == (r["p_value"] < 0.05) or math.isclose(r["p_value"], 0.05, abs_tol=1e-9)


def test_wilson_matches_known_values():
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> [0.2553, 0.3662]; 0 of 10 -> [0, 0.2775]
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson(11, 10)


def _decide(test, measured, **claim):
    (record,) = decide([Claim("c", "a claim", "—", "the rule", test, **claim)], measured)
    return record


def test_each_verdict_is_reached_and_undecided_says_what_would_decide():
    a, b = paired(300, 100, 40, 5)
    assert _decide(Paired("a", "b", above=0), {"a": a, "b": b})["holds"] is True
    assert _decide(Paired("b", "a", above=0), {"a": a, "b": b})["holds"] is False
    a, b = paired(300, 100, 25, 15)
    record = _decide(Paired("a", "b", above=0), {"a": a, "b": b})
    assert record["holds"] is None
    n_more = record["statistic"]["n_to_decide"]
    assert 300 < n_more < 3000 and f"{n_more:,} images would decide it (holds)" in record["note"]
    # at roughly that size, with the same proportions, the claim is decided
    scale = math.ceil(n_more / 300) + 1
    big = _decide(Paired("a", "b", above=0), {"a": np.tile(a, scale), "b": np.tile(b, scale)})
    assert big["holds"] is True


def test_two_sided_within_margin():
    a, b = paired(2000, 1000, 30, 30)  # no difference, tight interval
    assert _decide(Paired("a", "b", within=0.05), {"a": a, "b": b})["holds"] is True
    a, b = paired(2000, 500, 400, 0)  # a is 0.2 better: clearly not "about as good" either way
    assert _decide(Paired("a", "b", within=0.05), {"a": a, "b": b})["holds"] is False
    assert _decide(Paired("b", "a", within=0.05), {"a": a, "b": b})["holds"] is False


def test_threshold_and_ratio():
    assert _decide(Threshold("r", above=0.5), {"r": Rate(0.8, 200)})["holds"] is True
    assert _decide(Threshold("r", above=0.5), {"r": Rate(0.2, 200)})["holds"] is False
    record = _decide(Threshold("r", below=0.1), {"r": np.arange(300) < 23})  # 0.077 of 300
    assert record["holds"] is None and record["statistic"]["test"] == "Wilson interval"
    assert record["statistic"]["interval"] == pytest.approx(wilson(23, 300))
    assert _decide(Ratio("a", "b", below=0.1), {"a": Rate(0.13, 100), "b": Rate(0.46, 100)})["holds"] is False
    assert _decide(Ratio("a", "b", below=0.1), {"a": Rate(0.01, 400), "b": Rate(0.9, 400)})["holds"] is True


def test_two_part_claim_holds_only_if_both_hold():
    strong_a, strong_b = paired(300, 100, 60, 2)
    weak_a, weak_b = paired(300, 100, 20, 15)
    measured = {"a": strong_a, "b": strong_b, "c": weak_a, "d": weak_b, "r": Rate(0.05, 300)}
    both = All((Paired("a", "b", above=0), Threshold("r", below=0.1)))
    record = decide([Claim("both", "x", "—", "rule", both),
                     Claim("one_undecided", "x", "—", "rule", All((Paired("a", "b", above=0), Paired("c", "d", above=0)))),
                     Claim("one_fails", "x", "—", "rule", All((Paired("c", "d", above=0), Paired("b", "a", above=0))))],
                    measured)
    verdicts = {r["id"]: r["holds"] for r in record}
    assert verdicts == {"both": True, "one_undecided": None, "one_fails": False}
    parts = record[1]["parts"]
    assert [p["verdict"] for p in parts] == ["holds", "undecided"]


def test_every_pairs_each_group_member():
    hi1, lo1 = paired(300, 100, 80, 0)
    measured = {"A1": hi1, "A2": hi1, "B1": lo1, "B2": lo1}
    record = _decide(Every(("A1", "A2"), ("B1", "B2"), name_a="adv", name_b="std"), measured)
    assert record["holds"] is True and len(record["parts"]) == 4 and record["ours"].startswith("adv 0.600")
    two = decide([Claim("t", "x", "—", "r", All((Paired("A1", "B1", above=0), Paired("A1", "B2", above=0))))],
                 {k: v for k, v in measured.items() if k != "A2"})
    assert two[0]["ours"] == "A1 0.600, B1 0.333, B2 0.333"


def test_paired_bootstrap_for_scores_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.random(200), rng.random(200) * 0.5
    one = _decide(Paired("a", "b", above=0), {"a": a, "b": b})
    two = _decide(Paired("a", "b", above=0), {"a": a, "b": b})
    assert one["holds"] is True and one == two and one["statistic"]["test"].startswith("paired bootstrap")


def test_point_and_not_measured():
    assert _decide(Point("x", "y", above=0), {"x": 4.5, "y": 3.5})["holds"] is True
    record = _decide(Point("x", "y", above=0), {"x": NotMeasured("one size only"), "y": 1.0})
    assert record["holds"] is None and record["note"] == "one size only"


def test_decide_names_misspelt_or_missing_quantities():
    a, b = paired(50, 10, 5, 5)
    with pytest.raises(ValueError, match=r"measured holds \['bb'\], which no claim names"):
        decide([Claim("c", "x", "—", "r", Paired("a", "b", above=0))], {"a": a, "b": b, "bb": b})
    with pytest.raises(ValueError, match=r"claim 'c' compares \['b'\]"):
        decide([Claim("c", "x", "—", "r", Paired("a", "b", above=0))], {"a": a})
    with pytest.raises(ValueError, match="exactly one of above=, below= or within="):
        Paired("a", "b", above=0, below=1)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        Claim("c", "x", "—", "r", Paired("a", "b", above=0), alpha=0.7)


def test_records_validate_in_write_results_and_load_back(tmp_path, monkeypatch):
    monkeypatch.setenv("ENSEMBLES_BOOK_DIR", str(tmp_path / "book"))
    a, b = paired(300, 100, 40, 5)
    records = decide_and_write("demo", "smoke", "digits", 1.5,
                               [Claim("p", "A beats B", "0.5 vs 0.4", "a - b > 0", Paired("a", "b", above=0)),
                                Claim("two", "A beats B and R is low", "—", "both",
                                      All((Paired("a", "b", above=0), Threshold("r", below=0.5))))],
                               {"a": a, "b": b, "r": Rate(0.2, 300)}, notes={"p": "setting"})
    (record,) = load_results()
    assert record["claims"] == json.loads((tmp_path / "book" / "results" / "demo.json").read_text())["claims"]
    first = record["claims"][0]
    assert first["statistic"]["test"] == "exact McNemar" and first["statistic"]["n"] == 300
    assert first["rule"] == "a - b > 0" and first["note"] == "setting"
    bad = dict(records[0], statistic={"test": "x", "p_value": 2.0})
    with pytest.raises(ValueError, match=r"claims\[0\]\['statistic'\]\['p_value'\] must be a finite number in \[0, 1\]"):
        write_results("demo", "smoke", "digits", 1.5, [bad], folder=tmp_path)
    with pytest.raises(ValueError, match=r"unknown keys \['pvalue'\]"):
        write_results("demo", "smoke", "digits", 1.5, [dict(records[0], statistic={"test": "x", "pvalue": 0.1})],
                      folder=tmp_path)


def test_results_default_outside_the_book(monkeypatch, tmp_path):
    from ensembles_lib import results

    monkeypatch.delenv(results.BOOK_DIR_ENV, raising=False)
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path))
    assert results.results_dir() == tmp_path / "runs" / "unfiled" / "results"


def test_setting_ends_every_note_and_unknown_note_ids_are_named():
    a, b = paired(300, 100, 40, 5)
    claim = Claim("c", "x", "—", "r", Paired("a", "b", above=0))
    (record,) = decide([claim], {"a": a, "b": b}, notes={"c": "own"}, setting="digits, eps 0.1")
    assert record["note"] == "own; digits, eps 0.1"
    with pytest.raises(ValueError, match=r"notes name claims \['d'\]"):
        decide([claim], {"a": a, "b": b}, notes={"d": "x"})


def test_few_discordant_pairs_do_not_make_a_tight_interval():
    # 60 images, one discordant pair: a 3-point margin cannot be shown from this
    a, b = paired(60, 50, 0, 1)
    record = _decide(Paired("a", "b", above=-0.03), {"a": a, "b": b})
    assert record["holds"] is None and record["statistic"]["interval"][0] < -0.03
