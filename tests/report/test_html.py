import re
from html import unescape

from frugalnn.report import html
from frugalnn.report.verdicts import VERDICTS
from frugalnn.techniques import TECHNIQUES


def _card(page: str, name: str) -> str:
    m = re.search(rf"<a class='card [a-z]+' id='card-{name}'.*?</a>", page, re.S)
    assert m, f"no card for {name}"
    return m.group(0)


def _counts(card: str) -> dict[str, int]:
    return {v: int(n) for v, n in re.findall(r"data-verdict='([a-z ]+)' data-count='(\d+)'", card)}


def test_a_card_and_a_section_for_every_technique_built_or_planned(tiny_outcomes, tiny_meta, monkeypatch):
    # every technique is built now: make one look planned (no experiment module) to check that card too
    from frugalnn import techniques

    real = techniques.has_module
    monkeypatch.setattr(techniques, "has_module", lambda name: name != "frugalnn.tdnn.experiment" and real(name))
    page = html.render(tiny_outcomes, tiny_meta)
    for t in TECHNIQUES:
        card = _card(page, t.name)
        assert f"href='#{t.name}'" in card and t.paper in unescape(card)
        assert f"<span class='status {t.status}'>{t.status}</span>" in card
        assert f"<section id='{t.name}' class='technique'>" in page
    planned = [t for t in TECHNIQUES if t.status == "planned"]
    assert [t.name for t in planned] == ["tdnn"]
    for t in planned:
        assert "planned:" in _card(page, t.name)
    # the cards come first, before any section
    assert page.index("id='card-") < page.index("<section")


def test_card_shows_headline_with_verdict_and_counts(tiny_outcomes, tiny_meta):
    page = html.render(tiny_outcomes, tiny_meta)
    tmac = _card(page, "tmac")
    assert "2-bit GEMV speed-up vs llama.cpp Q2_K" in tmac and "2.9 x" in tmac and "paper 2.7 x" in tmac
    assert "v-reproduced" in tmac
    assert _counts(tmac) == {"reproduced": 1, "partly reproduced": 0, "not reproduced": 1, "derived": 0,
                             "measured": 0, "not measured": 1}
    lmul = _card(page, "lmul")
    assert "no headline row" in lmul
    assert _counts(lmul)["derived"] == 2 and _counts(lmul)["measured"] == 1
    fusemax = _card(page, "fusemax")
    assert "tiny-fusemax failed: RuntimeError: boom in fusemax" in fusemax and sum(_counts(fusemax).values()) == 0


def test_counts_follow_the_rows(tiny_outcomes):
    views, other = html.group(tiny_outcomes)
    by_name = {v.technique.name: v for v in views}
    assert by_name["tmac"].counts["not measured"] == 1
    assert sum(by_name["lmul"].counts.values()) == len(by_name["lmul"].rows) == 3
    assert [o.name for o in other] == ["tiny-other"]


def test_sections_hold_rules_tables_figures_and_the_failure(tiny_outcomes, tiny_meta):
    page = html.render(tiny_outcomes, tiny_meta)
    tmac = page[page.index("<section id='tmac'"):page.index("</section>", page.index("<section id='tmac'"))]
    assert "&gt;= 0.9 x claim" in tmac  # the rule column
    assert "llama.cpp peer absent" in tmac and "data:image/png;base64," in tmac and "median of 7" in tmac
    assert "RuntimeError: boom in fusemax" in page
    assert "<section id='other'>" in page and "tiny-other" in page


def test_legend_explains_every_verdict_including_derived():
    assert set(html.LEGEND) == set(VERDICTS)
    page = html._legend()
    assert "derived" in page and "arithmetic on the paper's own inputs, not a measurement" in unescape(page)
    assert "not measured" in page


def test_machine_section_names_the_isa_of_ours_torch_and_peers(tiny_outcomes, tiny_meta):
    page = html.render(tiny_outcomes, tiny_meta)
    machine = page[page.index("<section id='machine'>"):]
    assert f"<td>{tiny_meta['machine']['kernel_backend']} (available" in machine
    assert f"<th>ISA of torch</th><td>{tiny_meta['machine']['torch_isa']}</td>" in machine
    assert "<th>llama.cpp</th><td>version: 0.0-test, isa: AVX2 FMA</td>" in machine
    assert tiny_meta["machine"]["cpu"]["model"] in machine


def test_page_is_self_contained(tiny_outcomes, tiny_meta):
    page = html.render(tiny_outcomes, tiny_meta)
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)
    assert "<script" not in page and "@import" not in page
