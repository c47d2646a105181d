"""The cut-point / power-loss checker (tests/helpers.check_transactions) sees delivery-order
faults, not only lost or reused seqNos (E12: TransactionEvents delivered in order)."""
import pytest

from tests.helpers import check_transactions


def _ev(tid, seq, kind="Updated", evse=1):
    info = {"transactionId": tid}
    if kind == "Ended":
        info["stoppedReason"] = "Local"
    p = {"eventType": kind, "seqNo": seq, "timestamp": "2026-12-02T10:00:%02d.000Z" % seq,
         "triggerReason": "Authorized", "transactionInfo": info}
    if kind == "Started":
        p["evse"] = {"id": evse, "connectorId": 1}
    return ("m", p)


def test_E12_in_order_with_an_identical_resend_passes():
    frames = [_ev("A", 0, "Started"), _ev("A", 1), _ev("A", 1), _ev("A", 2, "Ended"),
              _ev("B", 0, "Started"), _ev("B", 1, "Ended")]
    assert sorted(check_transactions(frames)) == ["A", "B"]


def test_E12_seqnos_out_of_order_within_a_transaction_fail():
    frames = [_ev("A", 0, "Started"), _ev("A", 2), _ev("A", 1), _ev("A", 3, "Ended")]
    with pytest.raises(AssertionError, match="seqNo 1 arrived after seqNo 2"):
        check_transactions(frames)


def test_E12_started_before_the_previous_ended_on_the_same_evse_fails():
    frames = [_ev("A", 0, "Started"), _ev("A", 1), _ev("B", 0, "Started"),
              _ev("A", 2, "Ended"), _ev("B", 1, "Ended")]
    with pytest.raises(AssertionError, match="Started of B arrived before the Ended of A"):
        check_transactions(frames)


def test_E12_transactions_on_two_evses_may_interleave():
    frames = [_ev("A", 0, "Started", 1), _ev("B", 0, "Started", 2), _ev("A", 1, "Ended", 1),
              _ev("B", 1, "Ended", 2)]
    check_transactions(frames)
