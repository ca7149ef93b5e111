"""Outage arithmetic over probe samples, on hand-made timelines with known answers."""

import outage


def s(t, ok, body=""):
    return {"t": t, "ok": ok, "body": body}


def test_failover_outage_counts_from_fault_to_first_answer_of_the_other_node():
    samples = [
        s(9.9, True, "node1"),
        s(10.1, False),
        s(10.2, False),
        s(12.05, True, "node2"),
        s(12.15, True, "node2"),
    ]
    result = outage.measure(samples, fault_at=10.0, expect="node2")
    assert result.to_expected_s == 2.05
    assert result.longest_gap_s == 2.05
    assert result.failed_requests == 2


def test_split_brain_old_node_still_answering_is_no_gap():
    samples = [s(10.1, True, "node1"), s(10.2, True, "node1"), s(11.0, True, "node2")]
    result = outage.measure(samples, fault_at=10.0, expect="node2")
    assert result.to_expected_s == 1.0
    assert result.longest_gap_s == 0.0


def test_never_recovering_counts_to_the_last_sample():
    samples = [s(10.5, False), s(20.0, False)]
    result = outage.measure(samples, fault_at=10.0, expect="node2")
    assert result.to_expected_s is None
    assert result.longest_gap_s == 10.0


def test_summary_reports_median_max_and_lost_trials():
    assert outage.summary([2.0, 1.0, 3.0]) == "2.00 / 3.00 s (n=3)"
    assert outage.summary([2.0, None]) == "2.00 / 2.00 s (n=1), 1 never recovered"
    assert outage.summary([None]) == "no recovery (n=1)"


def test_overlapping_requests_are_taken_in_completion_order():
    # http_probe does not wait for a request before sending the next: one that timed out
    # completes after later ones that were answered by the node that took over.
    samples = [s(10.05, True, "node1"), s(10.6, True, "node2"), s(10.4, False), s(10.7, True, "node2")]
    result = outage.measure(samples, fault_at=10.0, expect="node2")
    assert result.longest_gap_s == 0.55
    assert result.failed_requests == 1


def test_back_is_the_answer_that_ended_the_longest_gap():
    samples = [
        s(10.01, True, "web1"),
        s(10.5, False),
        s(11.0, True, "web1"),
        s(12.0, False),
        s(25.0, True, "web2"),
    ]
    result = outage.measure(samples, fault_at=10.0, expect="web")
    assert result.to_expected_s == 0.01
    assert result.longest_gap_s == 14.0
    assert result.back_s == 15.0
