"""Pass analysis: the counts FuseMax states, and the footprint each variant must keep live."""
import pytest

from frugalnn.fusemax import cascade
from frugalnn.fusemax.cascade import parse

SHAPES = {"M": 4096, "M0": 64, "F": 64}


@pytest.mark.parametrize("variant,passes", [("3-pass", 3), ("3-pass deferred", 2), ("2-pass", 2), ("1-pass", 1)])
def test_attention_pass_counts(variant, passes):
    analysis = parse(cascade.ATTENTION[variant]).passes("m", shapes=SHAPES)
    assert analysis.passes == passes
    assert len(analysis.reasons) == max(1, passes - 1)


def test_reasons_name_the_forcing_reductions():
    a = parse(cascade.ATTENTION_3PASS).passes("m")
    assert "SN needs GM (line 4), a reduction over m" in a.reasons[0]
    assert "A needs SD (line 6)" in a.reasons[1]
    assert "3 passes over rank m" in a.explain()


def test_footprints_fiber_versus_tile():
    three = parse(cascade.ATTENTION_3PASS).passes("m", shapes=SHAPES)
    assert three.fiber_buffers == {"QK": "M", "SN": "M"} and three.footprint_elements == 2 * 4096
    one = parse(cascade.ATTENTION_1PASS).passes("m", shapes=SHAPES)
    assert one.fiber_buffers == {} and one.running_state == {"RM": "1", "RD": "1", "RNV": "F"}
    assert one.tile_passes == 2 and one.footprint_elements == 1 + 1 + 64 + 64
    # independent of M: the same footprint at 16x the sequence
    assert parse(cascade.ATTENTION_1PASS).passes("m", shapes={**SHAPES, "M": 65536}).footprint_elements == 130
    assert parse(cascade.ATTENTION_3PASS).passes("m", shapes={**SHAPES, "M": 65536}).footprint_elements == 131072


def test_other_cascades():
    assert parse(cascade.MATMUL).passes("k").passes == 1
    assert parse(cascade.MATMUL).passes("m").passes == 1
    assert parse(cascade.SOFTMAX_3PASS).passes("m").passes == 3
    online = parse(cascade.SOFTMAX_ONLINE).passes("m")
    assert online.passes == 2 and "the final step" in online.reasons[0]
    # queries are never re-walked: one pass over p
    assert parse(cascade.ATTENTION_3PASS).passes("p").passes == 1
    # inside a tile of the 1-pass cascade the m0 fiber is read twice (local max, then exp)
    assert parse(cascade.ATTENTION_1PASS).passes("m0").passes == 2


def test_unknown_rank_and_missing_shape():
    with pytest.raises(ValueError, match="does not occur"):
        parse(cascade.MATMUL).passes("z")
    with pytest.raises(ValueError, match="no value for F"):
        parse(cascade.ATTENTION_1PASS).passes("m", shapes={"M": 8, "M0": 4})
